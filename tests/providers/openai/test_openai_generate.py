"""Preflight sampling through chat completions."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from rlft.exceptions import ProviderAPIError, UsageError
from rlft_providers.openai._provider import OpenAIProvider
from rlft_providers.openai._settings import OpenAISettings

pytestmark = pytest.mark.anyio

KEY = "sk-generate-test-key"


@pytest.fixture
def provider() -> OpenAIProvider:
    async def no_sleep(seconds: float) -> None:
        return None

    return OpenAIProvider(settings=OpenAISettings(api_key=KEY), sleep=no_sleep)


async def test_one_completion_per_prompt_in_order(provider: OpenAIProvider) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        text = body["messages"][-1]["content"].upper()
        return httpx.Response(200, json={"choices": [{"message": {"content": text}}]})

    with respx.mock(assert_all_mocked=True) as mock:
        route = mock.post("https://api.openai.com/v1/chat/completions").mock(side_effect=answer)
        prompts = [[{"role": "user", "content": f"ticket {i}"}] for i in range(6)]
        out = await provider.generate(model="gpt-test", prompts=prompts, max_tokens=5)
    assert out == [f"TICKET {i}" for i in range(6)]
    body = json.loads(route.calls.last.request.content)
    assert body["model"] == "gpt-test" and body["max_completion_tokens"] == 5
    assert route.calls.last.request.headers["authorization"] == f"Bearer {KEY}"


async def test_errors_surface_and_a_model_is_required(provider: OpenAIProvider) -> None:
    with pytest.raises(UsageError, match="needs a model"):
        await provider.generate(model=None, prompts=[[{"role": "user", "content": "x"}]])
    with respx.mock(assert_all_mocked=True) as mock:
        mock.post("https://api.openai.com/v1/chat/completions").respond(
            404, json={"error": {"message": "The model does not exist", "code": "model_not_found"}}
        )
        with pytest.raises(ProviderAPIError) as info:
            await provider.generate(model="gone", prompts=[[{"role": "user", "content": "x"}]])
    assert info.value.status_code == 404
    assert KEY not in str(info.value)


@pytest.mark.parametrize(
    ("api", "url", "sent_model"),
    [
        (
            "classic",
            "https://res.openai.azure.com/openai/deployments/o4-mini-base/chat/completions",
            "o4-mini-base",
        ),
        ("v1", "https://res.openai.azure.com/openai/v1/chat/completions", "o4-mini-base"),
    ],
)
async def test_azure_samples_a_deployment_on_either_route(
    api: str, url: str, sent_model: str
) -> None:
    from rlft_providers.azure._provider import AzureProvider
    from rlft_providers.azure._settings import AzureSettings

    settings = AzureSettings(
        endpoint="https://res.openai.azure.com",
        api_key="azure-generate-key",
        api=api,  # type: ignore[arg-type]
        preflight_deployment="o4-mini-base",
    )
    provider = AzureProvider(settings=settings)
    with respx.mock(assert_all_mocked=True) as mock:
        route = mock.post(url).respond(200, json={"choices": [{"message": {"content": "bug"}}]})
        out = await provider.generate(model="o4-mini", prompts=[[{"role": "user", "content": "x"}]])
    assert out == ["bug"]
    request = route.calls.last.request
    assert json.loads(request.content)["model"] == sent_model
    assert request.headers["api-key"] == "azure-generate-key"
    assert ("api-version" in request.url.params) is (api == "classic")
