"""The ``bedrock-open-weight`` provider: gpt-oss and Qwen3 on Bedrock's OpenAI-compatible endpoint.

``https://bedrock-mantle.<region>.api.aws/v1`` speaks OpenAI's ``/files`` and
``/fine_tuning/jobs`` (reference/bedrock.md §5), so this reuses ``rlft.openai_compat`` and adds
Bedrock's auth and quirks. It is its own provider id, not a mode of ``bedrock``, because the
upload must know where the data goes: here straight to ``/files``, for Nova to S3.

- auth is a Bedrock API key as the bearer token: ``AWS_BEARER_TOKEN_BEDROCK`` when set, else a
  short-term key signed from the AWS credential chain, exactly as AWS's
  ``aws-bedrock-token-generator`` 1.1.0 builds it (a SigV4-presigned ``CallWithBearerToken`` URL);
- metrics events carry verl-style keys (``critic_rewards_mean``, ``actor_entropy``, ...), mapped
  by ``mantle_metrics``;
- the grader is the deployed Lambda: ``{"type": "lambda", "lambda": {"function": <ARN>}}``;
- ``suffix`` is "not supported", and job ``metadata`` is not documented, so neither is sent
  (https://docs.aws.amazon.com/bedrock/latest/userguide/fine-tuning-openai-job-create.html).
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import anyio
import boto3
import httpx
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest

from rlft.exceptions import (
    CapabilityError,
    ConfigurationError,
    ProviderConnectionError,
    RLFTError,
    ServerError,
    UsageError,
)
from rlft.openai_compat import (
    Dialect,
    OpenAICompatClient,
    OpenAICompatProvider,
    RetryPolicy,
    Sleep,
)
from rlft.provider import Capabilities, Checkpoint, JobEvent, JobRecord, ProviderSettings
from rlft_providers.bedrock._aws import Aws
from rlft_providers.bedrock._errors import map_bedrock_errors
from rlft_providers.bedrock._lambda import grader_arn
from rlft_providers.bedrock._rules import OPEN_WEIGHT_MODELS, is_open_weight
from rlft_providers.bedrock._settings import BedrockOpenWeightSettings
from rlft_providers.bedrock._translate import mantle_metrics

if TYPE_CHECKING:
    from rlft.provider import CreateJobRequest, JobSpec

__all__ = ["BedrockOpenWeight", "TokenSource", "lambda_grader"]

TOKEN_ENV = "AWS_BEARER_TOKEN_BEDROCK"
"""The environment variable AWS SDKs read a Bedrock API key from."""
_TOKEN_HOST = "bedrock.amazonaws.com"
_TOKEN_TTL = 3600  # seconds a generated key is valid; regenerated well before that
_TOKEN_REFRESH = 3000
_NO_PAUSE = (
    "pause and resume are not among the operations AWS documents for Bedrock's "
    "OpenAI-compatible endpoint (files, jobs, events, checkpoints, cancel); use job.cancel(), "
    "then start a new job"
)
_RECONCILE_WINDOW = 20  # newest jobs compared when reconciling a create that may have landed

log = logging.getLogger("rlft.bedrock")


class TokenSource:
    """Bedrock API keys for the bearer header: the env key, else fresh short-term keys.

    Args:
        session: The boto3 session whose credential chain signs short-term keys.
        region: The region the key is for.
        clock: Seconds, monotonic (tests inject one).
    """

    def __init__(self, *, session: boto3.Session, region: str, clock: Any = time.monotonic) -> None:
        self._session = session
        self._region = region
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._made_at = 0.0

    def _generate(self) -> str:
        # aws-bedrock-token-generator 1.1.0, token_generator._generate_token, reimplemented so the
        # extra needs only boto3.
        credentials = self._session.get_credentials()
        if credentials is None:
            raise ConfigurationError(
                f"no AWS credentials to sign a Bedrock API key; set {TOKEN_ENV} or the usual AWS "
                "credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE)"
            )
        request = AWSRequest(
            method="POST",
            url=f"https://{_TOKEN_HOST}/",
            headers={"host": _TOKEN_HOST},
            params={"Action": "CallWithBearerToken"},
        )
        SigV4QueryAuth(
            credentials.get_frozen_credentials(), "bedrock", self._region, expires=_TOKEN_TTL
        ).add_auth(request)
        presigned = str(request.url).replace("https://", "") + "&Version=1"
        return "bedrock-api-key-" + base64.b64encode(presigned.encode()).decode()

    def token(self) -> str:
        """The key to send now (blocking: credential refresh may do I/O)."""
        configured = os.environ.get(TOKEN_ENV)
        if configured:
            return configured
        with self._lock:
            if self._token is None or self._clock() - self._made_at > _TOKEN_REFRESH:
                with map_bedrock_errors():
                    self._token = self._generate()
                self._made_at = self._clock()
            return self._token


def _remap(event: JobEvent) -> JobEvent:
    data = (event.raw or {}).get("data")
    if event.kind != "metrics" or not isinstance(data, dict):
        return event
    return event.model_copy(update={"metrics": mantle_metrics(data)})


def lambda_grader(function_arn: str) -> dict[str, Any]:
    """The endpoint's grader object for a Lambda (reference/bedrock.md §5)."""
    return {"type": "lambda", "lambda": {"function": function_arn}}


class BedrockOpenWeight(OpenAICompatProvider):
    """Open-weight models (gpt-oss, Qwen3) on Bedrock's OpenAI-compatible fine-tuning endpoint:
    the ``bedrock-open-weight`` provider. Build it through
    ``rlft.Client(provider="bedrock-open-weight")``.

    Data goes straight to the endpoint's ``/files`` (no S3); the grader is deployed as a Lambda
    exactly as for Nova, and sent as ``{"type": "lambda", "lambda": {"function": <ARN>}}``.

    Args:
        settings: ``BedrockOpenWeightSettings``.
        session: A boto3 session instead of one built from ``settings`` (signs the short-term
            API key and deploys the grader Lambda).
        transport: An ``httpx`` transport instead of the network (tests).
        sleep: How to wait between retries and file polls.

    Raises:
        ConfigurationError: No region, or an unknown profile.
    """

    name: ClassVar[str] = "bedrock-open-weight"
    capabilities: ClassVar[Capabilities] = Capabilities(
        pause_job=False,
        resume_job=False,
        cancel_job=True,
        list_events=True,
        list_checkpoints=True,
        deploy_checkpoint=True,
        list_jobs=True,
        generate=True,  # chat completions on the same endpoint
        poll_interval=60.0,
    )
    dialect = Dialect(
        provider="bedrock-open-weight",
        requires_validation=False,
        send_metadata=False,
        body_options=frozenset(),
        max_train_examples=20_000,  # "100-20K examples" (rft-prepare-data-open-weight)
        max_validation_examples=None,
    )
    settings: BedrockOpenWeightSettings

    def __init__(
        self,
        *,
        settings: ProviderSettings,
        session: boto3.Session | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        if not isinstance(settings, BedrockOpenWeightSettings):
            raise ConfigurationError(
                "the bedrock-open-weight provider needs BedrockOpenWeightSettings, not "
                f"{type(settings).__name__}"
            )
        with map_bedrock_errors():
            if session is None:
                session = boto3.Session(region_name=settings.region, profile_name=settings.profile)
        region = settings.region or session.region_name
        if region is None:
            raise ConfigurationError(
                "no AWS region for provider 'bedrock-open-weight': set region in "
                "[bedrock-open-weight] of rlft.toml, RLFT_BEDROCK_OPEN_WEIGHT_REGION, or AWS_REGION"
            )
        self._aws = Aws(
            session=session,
            region=region,
            max_attempts=settings.max_attempts,
            max_concurrency=settings.max_concurrency,
        )
        self.tokens = TokenSource(session=session, region=region)
        tokens = self.tokens
        self._created: dict[str, str] = {}  # idempotency key -> job id, this process

        async def auth() -> dict[str, str]:
            token = await anyio.to_thread.run_sync(tokens.token)
            return {"Authorization": f"Bearer {token}"}

        base_url = settings.openai_base_url or f"https://bedrock-mantle.{region}.api.aws/v1"
        client = OpenAICompatClient(
            provider=self.name,
            base_url=base_url,
            auth=auth,
            transport=transport,
            retry=RetryPolicy(max_retries=max(0, settings.max_attempts - 1)),
            sleep=sleep,
        )
        super().__init__(
            settings=settings,
            client=client,
            sleep=sleep,
            file_poll_interval=settings.file_poll_interval,
            file_processing_timeout=settings.file_processing_timeout,
        )

    def check_spec(self, spec: JobSpec) -> None:
        """The model must train on this endpoint; then the endpoint's request rules.

        Raises:
            UsageError: A Nova (native) model, or a model rlft doesn't know trains here.
            HyperparameterError: A setting the endpoint lacks or a value out of range.
        """
        model = spec.model
        if model is None or not (is_open_weight(model) or self.settings.allow_unknown_models):
            known = ", ".join(sorted(OPEN_WEIGHT_MODELS))
            raise UsageError(
                f"model {model!r} does not train on Bedrock's OpenAI-compatible endpoint; use one "
                f"of {known} (Nova models train with provider 'bedrock'). If AWS added the model "
                "since, set [bedrock-open-weight] allow_unknown_models = true"
            )
        super().check_spec(spec)

    async def create_job(self, request: CreateJobRequest) -> JobRecord:
        """Deploy the grader Lambda (or use a ``Native`` grader's ARN) and create the job.

        The endpoint documents no job ``metadata`` to find a job by its idempotency key, so a
        retry is reconciled instead: the same key in this process returns the job it created,
        and a create that fails ambiguously (a timeout, a 5xx: it may have landed) looks for a
        job that appeared since, with the same model, files and grader (a pinned Lambda
        version), before raising.
        """
        key = request.idempotency_key
        if key in self._created:
            return await self.get_job(self._created[key])
        arn = await grader_arn(self._aws, self.settings, request)
        spec = request.spec.model_copy(update={"name": None})  # suffix: "not supported"
        opened = dataclasses.replace(request, spec=spec, grader_payload=lambda_grader(arn))
        before = {job.id for job in await self.list_jobs(limit=_RECONCILE_WINDOW)}
        try:
            record = await super().create_job(opened)
        except (ProviderConnectionError, ServerError):
            landed = await self._landed(opened, before=before)
            if landed is None:
                raise
            log.info("create of %s landed despite the error: job %s", spec.model, landed.id)
            record = landed
        self._created[key] = record.id
        return record

    async def _landed(self, request: CreateJobRequest, *, before: set[str]) -> JobRecord | None:
        """The job a failed create may have started: new since ``before``, same request."""
        try:
            jobs = await self.list_jobs(limit=_RECONCILE_WINDOW)
        except RLFTError:
            return None
        files = (request.training_file, request.validation_file)
        for job in jobs:
            raw: dict[str, Any] = dict(job.raw or {})
            method = raw.get("method")
            inner = method.get("reinforcement") if isinstance(method, dict) else None
            grader = inner.get("grader") if isinstance(inner, dict) else None
            if (
                job.id not in before
                and raw.get("model") == request.spec.model
                and (raw.get("training_file"), raw.get("validation_file")) == files
                and grader == request.grader_payload
            ):
                return job
        return None

    async def list_events(self, job_id: str, *, after: str | None = None) -> list[JobEvent]:
        """The endpoint's events; metrics events carry mantle's keys, mapped by
        ``mantle_metrics`` (train reward, response length, entropy, loss, grad norm)."""
        events = await super().list_events(job_id, after=after)
        return [_remap(event) for event in events]

    async def list_checkpoints(self, job_id: str) -> list[Checkpoint]:
        """The endpoint's checkpoints, their metrics read like the metrics events."""
        found = await super().list_checkpoints(job_id)
        out = []
        for checkpoint in found:
            metrics = (checkpoint.raw or {}).get("metrics")
            if isinstance(metrics, dict):
                mapped = mantle_metrics(metrics)
                if mapped.step is None:
                    mapped = mapped.model_copy(update={"step": checkpoint.step})
                checkpoint = checkpoint.model_copy(update={"metrics": mapped})
            out.append(checkpoint)
        return out

    async def pause_job(self, job_id: str) -> JobRecord:
        """Not documented on the endpoint: raises ``CapabilityError``."""
        raise CapabilityError(provider=self.name, operation="pause", reason=_NO_PAUSE)

    async def resume_job(self, job_id: str) -> JobRecord:
        """Not documented on the endpoint: raises ``CapabilityError``."""
        raise CapabilityError(provider=self.name, operation="resume", reason=_NO_PAUSE)

    async def download_results(self, job_id: str, path: str | Path) -> list[Path]:
        """Not documented on the endpoint: raises ``CapabilityError``."""
        raise CapabilityError(
            provider=self.name,
            operation="result downloads",
            reason="AWS documents no result files for the OpenAI-compatible endpoint",
        )

    async def validate_grader(self, payload: Any) -> None:
        """The grader is a Lambda: test it with ``rlft grade`` locally; raises
        ``CapabilityError``."""
        raise CapabilityError(
            provider=self.name,
            operation="remote grader validation",
            reason="the grader is your Lambda; run it locally with `rlft grade` instead",
        )

    async def run_grader(self, payload: Any, *, sample: str, item: Mapping[str, Any]) -> Any:
        """The grader is a Lambda: grade locally with ``grader.grade``; raises
        ``CapabilityError``."""
        raise CapabilityError(
            provider=self.name,
            operation="remote grader runs",
            reason="the grader is your Lambda; grade locally with grader.grade() instead",
        )

    async def deploy_checkpoint(self, checkpoint: Checkpoint, *, name: str | None = None) -> str:
        """Nothing to deploy: the fine-tuned model is called as it is on the same endpoint."""
        return checkpoint.model

    async def aclose(self) -> None:
        """Close the endpoint's connections and the boto3 clients. Idempotent."""
        self._aws.close()
        await super().aclose()
