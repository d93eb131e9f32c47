"""Deploy the compiled grader as a Lambda and return the published version's ARN.

``rlft.graders.compile(grader, "bedrock")`` builds the package (a zip that runs the grader on
rlft's own engine); this module only ships it. One function per grader name, updated in place,
and every job pins a *published version*, so changing a grader never changes a running job.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from rlft.exceptions import BadRequestError, ConfigurationError, NotFoundError, UsageError
from rlft_providers.bedrock._aws import Aws
from rlft_providers.bedrock._iam import ensure_execution_role
from rlft_providers.bedrock._settings import AwsSettings

if TYPE_CHECKING:
    from rlft.provider import CreateJobRequest

__all__ = [
    "LambdaPackageLike",
    "deploy_grader",
    "function_name",
    "grader_arn",
    "native_lambda_arn",
]

log = logging.getLogger("rlft.bedrock")

# Lambda refuses a ZipFile upload above 50 MB (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html).
_ZIP_LIMIT = 50 * 1024 * 1024
_LAMBDA_ARN = re.compile(
    r"^arn:(aws[a-zA-Z-]*)?:lambda:[a-z]{2}(-gov)?-[a-z]+-\d:\d{12}:function:[a-zA-Z0-9-_.]+"
    r"(:(\$LATEST|[a-zA-Z0-9-_]+))?$"
)


class LambdaPackageLike(Protocol):
    """What the ``bedrock`` compile target returns (``rlft.graders.formats.lambda_``)."""

    @property
    def zip_bytes(self) -> bytes: ...
    @property
    def handler(self) -> str: ...
    @property
    def runtime(self) -> str: ...


def native_lambda_arn(payload: Any) -> str | None:
    """The user's own Lambda ARN when the grader is a ``Native`` bedrock grader, else ``None``."""
    arn: Any = None
    if isinstance(payload, str):
        arn = payload
    elif isinstance(payload, Mapping):
        arn = payload.get("lambda_arn", payload.get("lambdaArn"))
    else:
        arn = getattr(payload, "lambda_arn", None)
    if arn is None:
        return None
    if not (isinstance(arn, str) and _LAMBDA_ARN.match(arn)):
        raise UsageError(
            f"native bedrock grader: {arn!r} is not a Lambda function ARN; write "
            "arn:aws:lambda:<region>:<account>:function:<name>[:<version or alias>]"
        )
    return arn


def function_name(prefix: str, grader_name: str) -> str:
    """``<prefix>-<grader name>``, cut to Lambda's 64 characters of ``[a-zA-Z0-9-_]``."""
    slug = re.sub(r"[^a-zA-Z0-9_-]+", "-", grader_name).strip("-") or "grader"
    return f"{prefix}-{slug}"[:64].rstrip("-_")


def code_sha256(zip_bytes: bytes) -> str:
    """Lambda's ``CodeSha256``: base64 of the zip's SHA-256."""
    return base64.b64encode(hashlib.sha256(zip_bytes).digest()).decode()


async def _create_function(aws: Aws, params: dict[str, Any], *, propagation_timeout: float) -> None:
    # A role created seconds ago is not yet assumable by Lambda (IAM is eventually consistent):
    # wait for it, bounded. This is not a retry of a failed call: the call never took effect.
    deadline = anyio.current_time() + propagation_timeout
    while True:
        try:
            await aws.call("lambda", "create_function", **params)
            return
        except BadRequestError as exc:
            if "cannot be assumed" not in str(exc) or anyio.current_time() >= deadline:
                raise
            log.info("waiting for IAM role %s to propagate to Lambda", params["Role"])
            await anyio.sleep(3)


async def deploy_grader(
    aws: Aws,
    package: LambdaPackageLike,
    *,
    name: str,
    role_arn: str,
    settings: AwsSettings,
    description: str,
) -> str:
    """Create or update function ``name`` with the package, publish a version, return its ARN.

    Raises:
        UsageError: The package is larger than Lambda's direct-upload limit.
        ProviderAPIError: AWS refused a call (mapped by ``map_bedrock_errors``).
    """
    zip_bytes = package.zip_bytes
    if len(zip_bytes) > _ZIP_LIMIT:
        raise UsageError(
            f"the grader package is {len(zip_bytes) / 2**20:.1f} MB; Lambda takes at most 50 MB "
            "uploaded directly. Trim the grader's dependencies"
        )
    requirements = tuple(getattr(package, "requirements", ()))
    if requirements and not settings.lambda_layers:
        # Without them every sample would fail closed and score 0 for the whole paid job.
        raise ConfigurationError(
            f"the grader needs {', '.join(requirements)} inside Lambda, which rlft does not bundle "
            "(compiled wheels must match Lambda's platform). Build a layer and name it in "
            "[bedrock] lambda_layers, for example:\n"
            "  pip install --platform manylinux2014_x86_64 --only-binary=:all: "
            f"--python-version 3.12 --target python {' '.join(repr(r) for r in requirements)}\n"
            "  zip -r layer.zip python && aws lambda publish-layer-version --layer-name "
            "rlft-grader-deps --zip-file fileb://layer.zip --compatible-runtimes python3.12"
        )
    sha = code_sha256(zip_bytes)
    config: dict[str, Any] = {
        "Runtime": package.runtime,
        "Handler": package.handler,
        "Role": role_arn,
        "Timeout": settings.lambda_timeout_s,
        "MemorySize": settings.lambda_memory_mb,
        "Layers": list(settings.lambda_layers),
    }
    try:
        current = await aws.call("lambda", "get_function_configuration", FunctionName=name)
    except NotFoundError:
        await _create_function(
            aws,
            {
                "FunctionName": name,
                "Code": {"ZipFile": zip_bytes},
                "Description": description[:256],
                "Tags": {"rlft": "grader"},
                **config,
            },
            propagation_timeout=settings.iam_propagation_timeout_s,
        )
        await aws.wait("lambda", "function_active_v2", FunctionName=name)
    else:
        if current.get("LastUpdateStatus") == "InProgress":  # another update still applying
            await aws.wait("lambda", "function_updated_v2", FunctionName=name)
        if current.get("CodeSha256") != sha:
            await aws.call("lambda", "update_function_code", FunctionName=name, ZipFile=zip_bytes)
            await aws.wait("lambda", "function_updated_v2", FunctionName=name)
        live = {**current, "Layers": [layer["Arn"] for layer in current.get("Layers", [])]}
        if any(live.get(key) != value for key, value in config.items()):
            await aws.call("lambda", "update_function_configuration", FunctionName=name, **config)
            await aws.wait("lambda", "function_updated_v2", FunctionName=name)
    # CodeSha256 makes publishing fail if someone else changed the code meanwhile; publishing
    # unchanged code and configuration returns the existing version.
    published = await aws.call(
        "lambda",
        "publish_version",
        FunctionName=name,
        CodeSha256=sha,
        Description=description[:256],
    )
    arn = str(published["FunctionArn"])
    log.info("grader Lambda %s version %s deployed", name, published.get("Version"))
    return arn


def _uses_models(grader: Any) -> bool:
    """Whether a grader (or any sub-grader) calls a judge model: its Lambda needs InvokeModel."""
    if getattr(grader, "type", None) in {"score_model", "label_model"}:
        return True
    subs = getattr(grader, "graders", None)
    return isinstance(subs, Mapping) and any(_uses_models(sub) for sub in subs.values())


async def grader_arn(aws: Aws, settings: AwsSettings, request: CreateJobRequest) -> str:
    """The Lambda ARN a job grades with: a ``Native`` grader's own, or the compiled package
    deployed as ``<lambda_function_prefix>-<grader name>`` (a published version).

    Raises:
        UsageError: The payload is neither a Lambda package nor a Lambda ARN.
    """
    native = native_lambda_arn(request.grader_payload)
    if native is not None:  # the user's own Lambda: nothing to deploy
        return native
    payload = request.grader_payload
    if not all(hasattr(payload, attr) for attr in ("zip_bytes", "handler", "runtime")):
        raise UsageError(
            "Bedrock needs the grader compiled with rlft.graders.compile(grader, 'bedrock') (a "
            f"Lambda package) or a Native grader with a lambda_arn, not {type(payload).__name__}"
        )
    grader = request.spec.grader
    role_arn = settings.lambda_role_arn
    if role_arn is None:
        role_arn, _ = await ensure_execution_role(
            aws, settings.lambda_role_name, judge=_uses_models(grader)
        )
    return await deploy_grader(
        aws,
        payload,
        name=function_name(settings.lambda_function_prefix, grader.name),
        role_arn=role_arn,
        settings=settings,
        description=f"rlft grader {grader.name!r} ({grader.type})",
    )
