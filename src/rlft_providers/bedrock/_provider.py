"""``BedrockProvider``: Nova reinforcement fine-tuning through boto3, graded by a generated Lambda.

Facts and sources: ``reference/bedrock.md``. The flow of one job:

1. ``check_spec``: model, hyperparameter ranges and enums, labels; nothing leaves the machine.
2. ``upload_dataset``: the rendered JSONL goes to ``<s3_uri>/datasets/<sha256>.jsonl``, once.
3. ``create_job``: the compiled grader is deployed as a Lambda (or a ``Native`` grader's own ARN is
   used), the job role's ``lambda:InvokeFunction`` is checked, and
   ``CreateModelCustomizationJob`` runs with ``customizationConfig.rftConfig`` and a
   ``clientRequestToken`` derived from the spec, so a retried create never starts a second job.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import boto3
import httpx

from rlft.exceptions import (
    BadRequestError,
    CapabilityError,
    ConfigurationError,
    NotFoundError,
    UsageError,
)
from rlft.provider import (
    Capabilities,
    Checkpoint,
    DatasetRole,
    JobEvent,
    JobRecord,
    Provider,
    ProviderSettings,
    map_concurrently,
    map_status,
)
from rlft_providers.bedrock import _rules
from rlft_providers.bedrock._aws import Aws
from rlft_providers.bedrock._errors import CONFLICT_CODES, map_bedrock_errors
from rlft_providers.bedrock._iam import check_invoke_permission, ensure_execution_role
from rlft_providers.bedrock._lambda import deploy_grader, function_name, native_lambda_arn
from rlft_providers.bedrock._open_weight import BedrockOpenWeight, lambda_grader
from rlft_providers.bedrock._settings import BedrockSettings
from rlft_providers.bedrock._translate import (
    checkpoints,
    events_after,
    json_safe,
    record_from_job,
    record_from_summary,
)

if TYPE_CHECKING:
    from rlft.datasets import Dataset
    from rlft.provider import CreateJobRequest, JobSpec

__all__ = ["BedrockProvider"]

log = logging.getLogger("rlft.bedrock")

_NO_PAUSE = (
    "Bedrock model customization jobs can only be stopped (StopModelCustomizationJob), and a "
    "stopped job cannot be resumed; use job.cancel(), then start a new job"
)


def _uses_models(grader: Any) -> bool:
    """Whether a grader (or any sub-grader) calls a judge model: its Lambda needs InvokeModel."""
    if getattr(grader, "type", None) in {"score_model", "label_model"}:
        return True
    subs = getattr(grader, "graders", None)
    return isinstance(subs, Mapping) and any(_uses_models(sub) for sub in subs.values())


class BedrockProvider(Provider):
    """Runs jobs on Amazon Bedrock. Build it through ``rlft.Client(provider="bedrock")``.

    Nova models train through ``CreateModelCustomizationJob``; open-weight models (gpt-oss,
    Qwen3, or any model with ``open_weight = true``) through Bedrock's OpenAI-compatible
    endpoint. Job ids tell them apart: native jobs are ARNs, open-weight jobs ``ftjob-`` ids.

    Args:
        settings: ``BedrockSettings`` (region, role, staging bucket, Lambda settings).
        session: A boto3 session to use instead of one built from ``settings`` (tests inject
            one; credentials always come from the AWS chain).
        transport: An ``httpx`` transport for the OpenAI-compatible endpoint (tests).

    Raises:
        ConfigurationError: No region, no credentials, or an unknown profile.
    """

    name: ClassVar[str] = "bedrock"
    capabilities: ClassVar[Capabilities] = Capabilities(
        pause_job=False,
        resume_job=False,
        cancel_job=True,
        list_events=True,  # synthesised from the job's fields: the native API has no event stream
        list_checkpoints=True,  # the output custom model, once the job completes
        deploy_checkpoint=True,
        list_jobs=True,
        generate=True,  # the Converse API, for `rlft preflight`
        validate_grader=False,
        run_grader=False,
        requires_validation_set=False,
        poll_interval=60.0,  # jobs take hours; GetModelCustomizationJob is rate limited
    )

    settings: BedrockSettings

    def __init__(
        self,
        *,
        settings: ProviderSettings,
        session: boto3.Session | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not isinstance(settings, BedrockSettings):
            raise ConfigurationError(
                f"the bedrock provider needs BedrockSettings, not {type(settings).__name__}"
            )
        super().__init__(settings=settings)
        with map_bedrock_errors():
            if session is None:
                session = boto3.Session(region_name=settings.region, profile_name=settings.profile)
            credentials = session.get_credentials()
        if settings.region is None and session.region_name is None:
            raise ConfigurationError(
                "no AWS region for provider 'bedrock': set region in [bedrock] of rlft.toml, "
                "RLFT_BEDROCK_REGION, or AWS_REGION (Nova RFT runs in us-east-1)"
            )
        if credentials is None:
            raise ConfigurationError(
                "no AWS credentials for provider 'bedrock': set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or a profile (AWS_PROFILE, or profile in [bedrock] of "
                "rlft.toml) after `aws configure` or `aws sso login`"
            )
        self._aws = Aws(
            session=session,
            region=settings.region,
            max_attempts=settings.max_attempts,
            max_concurrency=settings.max_concurrency,
        )
        self._transport = transport
        self._open_weight: BedrockOpenWeight | None = None

    # --- routing between the native API and the OpenAI-compatible endpoint --------------------

    @property
    def open_weight(self) -> BedrockOpenWeight:
        """The OpenAI-compatible half, built on first use."""
        if self._open_weight is None:
            self._open_weight = BedrockOpenWeight(
                settings=self.settings,
                session=self._aws.session,
                region=str(self._aws.region),
                transport=self._transport,
            )
        return self._open_weight

    def _is_open_model(self, model: str | None) -> bool:
        return _rules.is_open_weight(model, switch=self.settings.open_weight)

    def _is_open_job(self, job_id: str) -> bool:
        if self.settings.open_weight is not None:
            return self.settings.open_weight
        # Native ids are ARNs or job names rlft made; the endpoint's are OpenAI's ftjob- ids.
        return job_id.startswith("ftjob-")

    # --- checks before anything leaves the machine ---------------------------------------------

    def _require(self, field: str) -> str:
        value = getattr(self.settings, field)
        if not value:
            example = {
                "role_arn": '"arn:aws:iam::<account>:role/<bedrock-rft-role>"',
                "s3_uri": '"s3://<bucket>/rlft"',
            }[field]
            raise ConfigurationError(
                f"provider 'bedrock' needs {field} for Nova RFT jobs: set {field} = {example} in "
                f"[bedrock] of rlft.toml, or RLFT_BEDROCK_{field.upper()}"
            )
        return str(value)

    def check_spec(self, spec: JobSpec) -> None:
        """Check settings, model, hyperparameters and labels; raise before any upload.

        Raises:
            ConfigurationError: ``role_arn`` or ``s3_uri`` is not set.
            HyperparameterError: A value out of Bedrock's range, or a setting it lacks.
            UsageError: A model without RFT, a label Bedrock can't tag, a response format.
        """
        if self._is_open_model(spec.model):
            self.open_weight.check_spec(spec)
            if self.settings.open_weight is None:  # data is staged in S3 first, then sent on
                self._require("s3_uri")
            return
        self._require("role_arn")
        self._require("s3_uri")
        _rules.check_model(spec.model, allow_unknown=self.settings.allow_unknown_models)
        _rules.rft_hyperparameters(spec.hyperparameters)
        _rules.check_labels(spec.labels)
        if spec.response_format is not None:
            raise UsageError(
                "response_format is not supported by Bedrock Nova RFT (the API has no such "
                "field); describe the output format in the system prompt and let the grader "
                "score it"
            )
        if self._aws.region != "us-east-1":
            log.warning(
                "Nova RFT is documented in us-east-1 only; the region is %s", self._aws.region
            )

    # --- data ----------------------------------------------------------------------------------

    async def upload_dataset(self, dataset: Dataset, *, role: DatasetRole) -> str:
        """Render ``dataset`` to Bedrock's RFT JSONL and stage it in S3; return its ``s3://`` URI.

        The key is the SHA-256 of the rendered bytes, so the same data uploads once (a
        ``HeadObject`` finds it) and a changed rendering never reuses a stale object. With
        ``open_weight = true`` the file goes to the OpenAI-compatible endpoint's ``/files``.
        """
        from rlft.datasets import render

        if self.settings.open_weight:
            return await self.open_weight.upload_dataset(dataset, role=role)
        body = render(dataset, "bedrock")
        self._require("s3_uri")
        bucket, prefix = self.settings.staging()
        key = "/".join(p for p in (prefix, "datasets", hashlib.sha256(body).hexdigest()) if p)
        key += ".jsonl"
        uri = f"s3://{bucket}/{key}"
        try:
            await self._aws.call("s3", "head_object", Bucket=bucket, Key=key)
        except NotFoundError:
            extra: dict[str, Any] = {}
            if self.settings.kms_key_id:
                extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.settings.kms_key_id}
            await self._aws.call(
                "s3",
                "put_object",
                Bucket=bucket,
                Key=key,
                Body=body,
                ContentType="application/jsonl",
                **extra,
            )
            log.info("uploaded %s set (%d rows) to %s", role, len(dataset), uri)
        else:
            log.info("%s set already staged at %s", role, uri)
        return uri

    # --- jobs ----------------------------------------------------------------------------------

    async def _grader_arn(self, request: CreateJobRequest) -> str:
        native = native_lambda_arn(request.grader_payload)
        if native is not None:  # the user's own Lambda: nothing to deploy
            return native
        payload = request.grader_payload
        if not all(hasattr(payload, attr) for attr in ("zip_bytes", "handler", "runtime")):
            raise UsageError(
                "the bedrock provider needs the grader compiled with "
                "rlft.graders.compile(grader, 'bedrock') (a Lambda package) or a Native grader "
                f"with a lambda_arn, not {type(payload).__name__}"
            )
        grader = request.spec.grader
        role_arn = self.settings.lambda_role_arn
        if role_arn is None:
            role_arn, _ = await ensure_execution_role(
                self._aws, self.settings.lambda_role_name, judge=_uses_models(grader)
            )
        return await deploy_grader(
            self._aws,
            payload,
            name=function_name(self.settings.lambda_function_prefix, grader.name),
            role_arn=role_arn,
            settings=self.settings,
            description=f"rlft grader {grader.name!r} ({grader.type})",
        )

    async def create_job(self, request: CreateJobRequest) -> JobRecord:
        """Deploy the grader, check the job role may invoke it, and create the RFT job.

        A create retried with the same ``idempotency_key`` returns the job the first one started.

        Raises:
            ConfigurationError: The job role cannot invoke the grader (names the statement).
            ProviderAPIError: AWS refused a call.
        """
        spec = request.spec
        self.check_spec(spec)
        if self._is_open_model(spec.model):
            return await self._create_open_weight(request)
        role_arn = self._require("role_arn")
        lambda_arn = await self._grader_arn(request)
        if self.settings.check_permissions:
            await check_invoke_permission(self._aws, role_arn=role_arn, function_arn=lambda_arn)

        job_name, model_name = _rules.job_names(spec.name, request.idempotency_key)
        token = _rules.client_token(request.idempotency_key)
        rft_config: dict[str, Any] = {"graderConfig": {"lambdaGrader": {"lambdaArn": lambda_arn}}}
        hyperparameters = _rules.rft_hyperparameters(spec.hyperparameters)
        if hyperparameters:
            rft_config["hyperParameters"] = hyperparameters
        params: dict[str, Any] = {
            "jobName": job_name,
            "customModelName": model_name,
            "roleArn": role_arn,
            "clientRequestToken": token,
            "baseModelIdentifier": _rules.check_model(
                spec.model, allow_unknown=self.settings.allow_unknown_models
            ),
            "customizationType": "REINFORCEMENT_FINE_TUNING",
            "trainingDataConfig": {"s3Uri": request.training_file},
            "outputDataConfig": {"s3Uri": self.settings.output_uri()},
            "customizationConfig": {"rftConfig": rft_config},
        }
        if request.validation_file:
            params["validationDataConfig"] = {"validators": [{"s3Uri": request.validation_file}]}
        if self.settings.kms_key_id:
            params["customModelKmsKeyId"] = self.settings.kms_key_id
        vpc = self.settings.vpc_config()
        if vpc:
            params["vpcConfig"] = vpc
        tags = _rules.check_labels(spec.labels)
        if tags:
            params["jobTags"] = tags
        try:
            created = await self._aws.call("bedrock", "create_model_customization_job", **params)
        except BadRequestError as exc:
            if exc.code not in CONFLICT_CODES and "already exists" not in str(exc):
                raise
            return await self._existing(job_name, token, exc)
        now = dt.datetime.now(dt.UTC)
        # Bedrock echoes none of the request and moto drops customizationConfig: keep our own.
        return JobRecord(
            id=str(created["jobArn"]),
            provider=self.name,
            status=map_status(self.name, "InProgress"),
            provider_status="InProgress",
            model=params["baseModelIdentifier"],
            name=job_name,
            created_at=now,
            metadata={
                "job_name": job_name,
                "custom_model_name": model_name,
                "lambda_arn": lambda_arn,
                "client_request_token": token,
            },
            raw=json_safe({"request": params}),
        )

    async def _endpoint_file(self, uri: str | None, role: str) -> str | None:
        # The data was staged in S3 before the model picked the endpoint: send it on.
        if uri is None or not uri.startswith("s3://"):
            return uri
        bucket, _, key = uri.removeprefix("s3://").partition("/")

        def read() -> bytes:
            body: bytes = self._aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
            return body

        content = await self._aws.run(read)
        client = self.open_weight.client
        file = await client.upload(
            "/files",
            filename=f"rlft-{role}-{key.rsplit('/', 1)[-1]}",
            content=content,
            fields={"purpose": "fine-tune"},
        )
        await self.open_weight._wait_processed(file, role=role)
        return str(file["id"])

    async def _create_open_weight(self, request: CreateJobRequest) -> JobRecord:
        lambda_arn = await self._grader_arn(request)
        opened = dataclasses.replace(
            request,
            grader_payload=lambda_grader(lambda_arn),
            training_file=await self._endpoint_file(request.training_file, "train") or "",
            validation_file=await self._endpoint_file(request.validation_file, "validation"),
        )
        return await self.open_weight.create_job(opened)

    async def _existing(self, job_name: str, token: str, cause: Exception) -> JobRecord:
        # A retried create: Bedrock ignores a repeated clientRequestToken, but a repeated jobName
        # can come back as a conflict (moto: ResourceInUseException). Same token, same job.
        job = await self._aws.call("bedrock", "get_model_customization_job", jobIdentifier=job_name)
        if job.get("clientRequestToken") not in (None, token):
            raise UsageError(
                f"a Bedrock job named {job_name!r} exists but was created from another request; "
                "give this job a different name"
            ) from cause
        log.info("create retried: job %s already exists; returning it", job_name)
        return record_from_job(job)

    async def _job(self, job_id: str) -> Any:
        return await self._aws.call("bedrock", "get_model_customization_job", jobIdentifier=job_id)

    async def get_job(self, job_id: str) -> JobRecord:
        """Fetch one job by ARN or job name (or an open-weight ``ftjob-`` id)."""
        if self._is_open_job(job_id):
            return await self.open_weight.get_job(job_id)
        return record_from_job(await self._job(job_id))

    async def list_jobs(self, *, limit: int = 100) -> list[JobRecord]:
        """The most recent reinforcement fine-tuning jobs, newest first (one paginated walk).

        Native jobs, or the OpenAI-compatible endpoint's with ``open_weight = true``.
        """
        if self.settings.open_weight:
            return await self.open_weight.list_jobs(limit=limit)
        summaries = await self._aws.paginate(
            "bedrock",
            "list_model_customization_jobs",
            "modelCustomizationJobSummaries",
            limit=limit,
            where=lambda s: (
                s.get("customizationType", "REINFORCEMENT_FINE_TUNING")
                == "REINFORCEMENT_FINE_TUNING"
            ),
            sortBy="CreationTime",
            sortOrder="Descending",
        )
        return [record_from_summary(summary) for summary in summaries]

    async def list_events(self, job_id: str, *, after: str | None = None) -> list[JobEvent]:
        """Events synthesised from the job's fields (the native API has no event stream); the
        OpenAI-compatible endpoint's own events for open-weight jobs."""
        if self._is_open_job(job_id):
            return await self.open_weight.list_events(job_id, after=after)
        job = await self._job(job_id)
        return events_after(str(job.get("jobArn", job_id)), job, after)

    async def list_checkpoints(self, job_id: str) -> list[Checkpoint]:
        """The output custom model once a native job completed (Bedrock exposes no others); the
        endpoint's checkpoints for open-weight jobs."""
        if self._is_open_job(job_id):
            return await self.open_weight.list_checkpoints(job_id)
        job = await self._job(job_id)
        return checkpoints(str(job.get("jobArn", job_id)), job)

    async def cancel_job(self, job_id: str) -> JobRecord:
        """Stop the job (``InProgress`` -> ``Stopping`` -> ``Stopped``). Stopping a job that has
        already ended is not an error: the job is returned as it is."""
        if self._is_open_job(job_id):
            return await self.open_weight.cancel_job(job_id)
        try:
            await self._aws.call("bedrock", "stop_model_customization_job", jobIdentifier=job_id)
        except BadRequestError as exc:
            if exc.code not in CONFLICT_CODES:
                raise
            log.info("job %s was not running (%s); nothing to stop", job_id, exc.code)
        return await self.get_job(job_id)

    async def pause_job(self, job_id: str) -> JobRecord:
        """Not on Bedrock: raises ``CapabilityError`` saying why."""
        raise CapabilityError(provider=self.name, operation="pause", reason=_NO_PAUSE)

    async def resume_job(self, job_id: str) -> JobRecord:
        """Not on Bedrock: raises ``CapabilityError`` saying why."""
        raise CapabilityError(provider=self.name, operation="resume", reason=_NO_PAUSE)

    async def generate(
        self,
        *,
        model: str | None,
        prompts: Sequence[Sequence[Mapping[str, Any]]],
        max_tokens: int | None = None,
    ) -> list[str]:
        """Sample one answer per prompt through the Converse API (``bedrock-runtime``).

        System and developer messages become Converse's ``system`` blocks. Calls share the
        provider's thread limiter, so at most its ``max_concurrency`` run at once.
        """
        if not model:
            raise UsageError("provider 'bedrock' needs a model id (or inference profile) to sample")

        async def sample(messages: Sequence[Mapping[str, Any]]) -> str:
            request = _converse(model, messages, max_tokens)
            answer = await self._aws.call("bedrock-runtime", "converse", **request)
            blocks = answer.get("output", {}).get("message", {}).get("content", [])
            return "".join(block.get("text", "") for block in blocks)

        return await map_concurrently(sample, prompts, limit=self.settings.max_concurrency)

    async def deploy_checkpoint(self, checkpoint: Checkpoint, *, name: str | None = None) -> str:
        """Create an on-demand custom model deployment; return its ARN, the ``modelId`` to pass
        to ``InvokeModel``/``Converse`` once ``GetCustomModelDeployment`` says ``Active``.

        Args:
            checkpoint: The job's checkpoint (its ``model`` is the custom-model ARN).
            name: The deployment name; derived from the model name when omitted.
        """
        if self._is_open_job(checkpoint.job_id):
            return await self.open_weight.deploy_checkpoint(checkpoint, name=name)
        model_arn = checkpoint.model
        hint = (checkpoint.raw or {}).get("outputModelName")
        deployment = _rules.deployment_name(name, model_arn, hint=str(hint) if hint else None)
        token = _rules.client_token(f"deploy:{model_arn}:{deployment}")
        created = await self._aws.call(
            "bedrock",
            "create_custom_model_deployment",
            modelDeploymentName=deployment,
            modelArn=model_arn,
            description=f"rlft: {checkpoint.job_id}"[:2048],
            clientRequestToken=token,
        )
        return str(created["customModelDeploymentArn"])

    async def aclose(self) -> None:
        """Close the boto3 clients and the endpoint's connections. Idempotent."""
        self._aws.close()
        if self._open_weight is not None:
            await self._open_weight.aclose()


def _converse(
    model: str, messages: Sequence[Mapping[str, Any]], max_tokens: int | None
) -> dict[str, Any]:
    """A Converse request: system/developer turns go to ``system``, the rest stay in order."""
    system = [
        {"text": str(m.get("content", ""))}
        for m in messages
        if m.get("role") in {"system", "developer"}
    ]
    turns = [
        {
            "role": "assistant" if m.get("role") == "assistant" else "user",
            "content": [{"text": str(m.get("content", ""))}],
        }
        for m in messages
        if m.get("role") not in {"system", "developer"}
    ]
    request: dict[str, Any] = {"modelId": model, "messages": turns}
    if system:
        request["system"] = system
    if max_tokens is not None:
        request["inferenceConfig"] = {"maxTokens": max_tokens}
    return request
