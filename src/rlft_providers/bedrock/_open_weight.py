"""Open-weight models (gpt-oss, Qwen3) through Bedrock's OpenAI-compatible fine-tuning endpoint.

``https://bedrock-mantle.<region>.api.aws/v1`` speaks OpenAI's ``/files`` and
``/fine_tuning/jobs`` (reference/bedrock.md §5), so this reuses ``_openai_compat`` and adds
Bedrock's auth and quirks:

- auth is a Bedrock API key as the bearer token: ``AWS_BEARER_TOKEN_BEDROCK`` when set, else a
  short-term key signed from the AWS credential chain, exactly as AWS's
  ``aws-bedrock-token-generator`` 1.1.0 builds it (a SigV4-presigned ``CallWithBearerToken`` URL);
- the grader is the deployed Lambda: ``{"type": "lambda", "lambda": {"function": <ARN>}}``;
- ``suffix`` is "not supported", and job ``metadata`` is not documented, so neither is sent
  (https://docs.aws.amazon.com/bedrock/latest/userguide/fine-tuning-openai-job-create.html).
"""

from __future__ import annotations

import base64
import dataclasses
import os
import threading
import time
from typing import TYPE_CHECKING, Any, ClassVar

import anyio
import httpx
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest

from rlft.exceptions import ConfigurationError
from rlft.openai_compat import (
    Dialect,
    OpenAICompatClient,
    OpenAICompatProvider,
    RetryPolicy,
    Sleep,
)
from rlft.provider import Capabilities, Checkpoint, JobRecord
from rlft_providers.bedrock._errors import map_bedrock_errors
from rlft_providers.bedrock._settings import BedrockSettings

if TYPE_CHECKING:
    import boto3

    from rlft.provider import CreateJobRequest

__all__ = ["BedrockOpenWeight", "TokenSource", "lambda_grader"]

TOKEN_ENV = "AWS_BEARER_TOKEN_BEDROCK"
"""The environment variable AWS SDKs read a Bedrock API key from."""
_TOKEN_HOST = "bedrock.amazonaws.com"
_TOKEN_TTL = 3600  # seconds a generated key is valid; regenerated well before that
_TOKEN_REFRESH = 3000


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


def lambda_grader(function_arn: str) -> dict[str, Any]:
    """The endpoint's grader object for a Lambda (reference/bedrock.md §5)."""
    return {"type": "lambda", "lambda": {"function": function_arn}}


class BedrockOpenWeight(OpenAICompatProvider):
    """The OpenAI-compatible half of the ``bedrock`` provider. ``BedrockProvider`` owns it.

    Args:
        settings: The provider's ``BedrockSettings``.
        session: The boto3 session (signs short-term keys).
        region: The endpoint's region.
        transport: An ``httpx`` transport instead of the network (tests).
        sleep: How to wait between retries and file polls.
    """

    name: ClassVar[str] = "bedrock"
    capabilities: ClassVar[Capabilities] = Capabilities(
        pause_job=False,
        resume_job=False,
        list_events=True,
        list_checkpoints=True,
        deploy_checkpoint=True,
        list_jobs=True,
    )
    dialect = Dialect(
        provider="bedrock",
        requires_validation=False,
        send_metadata=False,
        body_options=frozenset(),
        max_train_examples=20_000,  # "100-20K examples" (rft-prepare-data-open-weight)
        max_validation_examples=None,
    )

    def __init__(
        self,
        *,
        settings: BedrockSettings,
        session: boto3.Session,
        region: str,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        self.tokens = TokenSource(session=session, region=region)
        tokens = self.tokens

        async def auth() -> dict[str, str]:
            token = await anyio.to_thread.run_sync(tokens.token)
            return {"Authorization": f"Bearer {token}"}

        base_url = settings.openai_base_url or f"https://bedrock-mantle.{region}.api.aws/v1"
        client = OpenAICompatClient(
            provider="bedrock",
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

    async def create_job(self, request: CreateJobRequest) -> JobRecord:
        """Create the job; ``request.grader_payload`` is already the Lambda grader object."""
        spec = request.spec.model_copy(update={"name": None})  # suffix: "not supported"
        return await super().create_job(dataclasses.replace(request, spec=spec))

    async def deploy_checkpoint(self, checkpoint: Checkpoint, *, name: str | None = None) -> str:
        """Nothing to deploy: the fine-tuned model is called as it is on the same endpoint."""
        return checkpoint.model
