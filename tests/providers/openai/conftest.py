"""Fixtures for the OpenAI and Azure backends: a fake fine-tuning server behind respx, a sleep
recorder, providers wired to both, and the ``openai`` package as a request-body oracle.

Test modules run under ``--import-mode=importlib`` and cannot import each other, so every shared
helper is a fixture here (the fake server itself is ``rlft.testing.FakeFineTuningServer``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import respx
from pydantic import TypeAdapter

from rlft._spec import CreateJobRequest, JobSpec
from rlft.datasets import Dataset
from rlft.graders import Multi, StringCheck, TextSimilarity
from rlft.testing import FakeFineTuningServer
from rlft_providers.azure._provider import AzureProvider
from rlft_providers.azure._settings import AzureSettings
from rlft_providers.openai._provider import OpenAIProvider
from rlft_providers.openai._settings import OpenAISettings

OPENAI_KEY = "sk-test-CANARY-0123456789abcdef"
AZURE_KEY = "azure-CANARY-key-0123456789abcdef"
AZURE_ENDPOINT = "https://res.openai.azure.com"


class SleepRecorder:
    """An injectable sleep: records every wait instead of waiting, so tests assert the delays."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    """respx over every httpx transport; unmatched requests fail the test."""
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
def server(mock: respx.MockRouter) -> FakeFineTuningServer:
    """The fake OpenAI fine-tuning API at https://api.openai.com/v1."""
    fake = FakeFineTuningServer(prefix="/v1")
    mock.route(host="api.openai.com").mock(side_effect=fake)
    return fake


@pytest.fixture
def openai_provider(server: FakeFineTuningServer, sleeps: SleepRecorder) -> OpenAIProvider:
    return OpenAIProvider(settings=OpenAISettings(api_key=OPENAI_KEY), sleep=sleeps)


@pytest.fixture
def azure_server(mock: respx.MockRouter) -> FakeFineTuningServer:
    """The fake Azure classic API at https://res.openai.azure.com/openai?api-version=..."""
    fake = FakeFineTuningServer(prefix="/openai", flavour="azure", api_version="2025-04-01-preview")
    mock.route(host="res.openai.azure.com").mock(side_effect=fake)
    return fake


@pytest.fixture
def azure_provider(azure_server: FakeFineTuningServer, sleeps: SleepRecorder) -> AzureProvider:
    settings = AzureSettings(endpoint=AZURE_ENDPOINT, api_key=AZURE_KEY)
    return AzureProvider(settings=settings, sleep=sleeps)


def _rows(count: int, start: int = 0) -> list[dict[str, Any]]:
    labels = ["billing", "bug", "account"]
    return [
        {
            "messages": [{"role": "user", "content": f"ticket {i}: route it"}],
            "label": labels[i % 3],
            "reason": f"because {i}",
        }
        for i in range(start, start + count)
    ]


@pytest.fixture
def spec() -> JobSpec:
    """A small RFT job with a multi grader (dict-shaped graders on the wire)."""
    grader = Multi(
        name="triage",
        graders={
            "label": StringCheck(
                name="label",
                input="{{ sample.output_json.label }}",
                reference="{{ item.label }}",
                operation="eq",
            ),
            "why": TextSimilarity(
                name="why",
                input="{{ sample.output_json.reason }}",
                reference="{{ item.reason }}",
                evaluation_metric="rouge_l",
            ),
        },
        calculate_output="0.8 * label + 0.2 * why",
    )
    return JobSpec(
        model="o4-mini-2025-04-16",
        train=Dataset.from_records(_rows(12)),
        validation=Dataset.from_records(_rows(4, start=100)),
        grader=grader,
    )


@pytest.fixture
def make_request() -> Callable[..., CreateJobRequest]:
    """A ``CreateJobRequest`` as the core builds it (grader compiled for the target)."""
    from rlft.graders import compile as compile_grader

    def make(
        spec: JobSpec,
        *,
        target: str = "openai",
        key: str = "idem-key-1",
        training_file: str = "file-train",
        validation_file: str | None = "file-valid",
    ) -> CreateJobRequest:
        return CreateJobRequest(
            spec=spec,
            grader_payload=compile_grader(spec.grader, target),
            training_file=training_file,
            validation_file=validation_file,
            idempotency_key=key,
        )

    return make


@pytest.fixture
def openai_shaped() -> Callable[[bytes], None]:
    """Pin a create body to the official ``openai`` parameter types, with extra keys forbidden.

    Two known spec bugs are patched out first, both sent on purpose:
    1. ``method.reinforcement.response_format`` is accepted by the service but absent from the
       types (https://developers.openai.com/api/docs/guides/reinforcement-fine-tuning).
    2. ``multi.graders`` is a dict keyed by the names ``calculate_output`` uses, though the
       spec and SDK type it as one grader (https://github.com/openai/openai-java/issues/647):
       each value is checked against the sub-grader types instead.
    """
    from openai.types.fine_tuning.job_create_params import JobCreateParams
    from openai.types.graders.multi_grader_param import Graders

    job_create = TypeAdapter(JobCreateParams)
    sub_grader = TypeAdapter(Graders)

    def check(content: bytes) -> None:
        body = json.loads(content)
        rft = body["method"]["reinforcement"]
        rft.pop("response_format", None)
        grader = rft["grader"]
        if grader["type"] == "multi":
            subs = grader["graders"]
            assert isinstance(subs, dict) and subs, "multi.graders must be a named dict"
            for sub in subs.values():
                sub_grader.validate_python(sub, extra="forbid")
            grader["graders"] = next(iter(subs.values()))
        job_create.validate_python(body, extra="forbid")

    return check
