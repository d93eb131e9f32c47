"""The wire layer on its own: retries, Retry-After, error mapping, masking, pagination."""

from __future__ import annotations

import logging
import pickle
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from rlft.exceptions import (
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    PermissionDeniedError,
    ProviderAPIError,
    ProviderConnectionError,
    RateLimitError,
    ServerError,
)
from rlft.openai_compat import OpenAICompatClient, RetryPolicy, map_http_errors, mask

pytestmark = pytest.mark.anyio

BASE = "https://api.test/v1"
SECRET = "sk-wire-CANARY-abcdef0123456789"


@pytest.fixture
def client(sleeps) -> OpenAICompatClient:
    async def auth() -> dict[str, str]:
        return {"Authorization": f"Bearer {SECRET}"}

    return OpenAICompatClient(
        provider="openai",
        base_url=BASE,
        auth=auth,
        retry=RetryPolicy(max_retries=2, initial_delay=0.5, max_delay=4.0),
        sleep=sleeps,
    )


def openai_error(status: int, message: str, *, param=None, code=None, **headers) -> httpx.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": param}}
    body["error"]["code"] = code
    return httpx.Response(status, json=body, headers=headers)


# --- retries ----------------------------------------------------------------------------------


async def test_429_waits_exactly_what_retry_after_says(client, mock, sleeps) -> None:
    route = mock.get(f"{BASE}/fine_tuning/jobs/ftjob-1").mock(
        side_effect=[
            openai_error(429, "slow down", **{"retry-after": "7"}),
            httpx.Response(200, json={"id": "ftjob-1"}),
        ]
    )
    assert await client.get("/fine_tuning/jobs/ftjob-1") == {"id": "ftjob-1"}
    assert route.call_count == 2
    assert sleeps.waits == [7.0]  # honoured as given: no jitter on a server's hint


async def test_retry_after_ms_and_http_dates_are_understood(client, mock, sleeps) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    mock.get(f"{BASE}/x").mock(
        side_effect=[
            httpx.Response(503, headers={"retry-after-ms": "250"}),
            httpx.Response(503, headers={"retry-after": when}),
            httpx.Response(200, json={}),
        ]
    )
    await client.get("/x")
    assert sleeps.waits[0] == pytest.approx(0.25)
    assert 25 < sleeps.waits[1] <= 30


async def test_500_then_success_backs_off_with_jitter(client, mock, sleeps) -> None:
    route = mock.get(f"{BASE}/x").mock(
        side_effect=[httpx.Response(500), httpx.Response(502), httpx.Response(200, json=[1])]
    )
    assert await client.get("/x") == [1]
    assert route.call_count == 3
    first, second = sleeps.waits
    assert 0.375 <= first <= 0.5  # 0.5 s, minus up to 25 % jitter
    assert 0.75 <= second <= 1.0  # doubled


async def test_gives_up_after_max_retries_and_says_how_often(client, mock, sleeps) -> None:
    route = mock.get(f"{BASE}/x").mock(return_value=openai_error(500, "boom"))
    with pytest.raises(ServerError) as info:
        await client.get("/x")
    assert route.call_count == 3  # 1 + max_retries
    assert len(sleeps.waits) == 2
    assert "gave up after 3 attempts" in str(info.value)
    assert info.value.status_code == 500


async def test_a_create_is_not_retried_after_a_5xx(client, mock, sleeps) -> None:
    route = mock.post(f"{BASE}/fine_tuning/jobs").mock(return_value=httpx.Response(500))
    with pytest.raises(ServerError):
        await client.post("/fine_tuning/jobs", json={"model": "m"})
    assert route.call_count == 1  # it may have landed: never sent twice
    assert sleeps.waits == []


async def test_a_create_is_retried_on_429_and_connect_errors(client, mock, sleeps) -> None:
    route = mock.post(f"{BASE}/fine_tuning/jobs").mock(
        side_effect=[
            httpx.ConnectError("refused"),
            openai_error(429, "rate limited", **{"retry-after": "1"}),
            httpx.Response(200, json={"id": "ftjob-1"}),
        ]
    )
    assert await client.post("/fine_tuning/jobs", json={}) == {"id": "ftjob-1"}
    assert route.call_count == 3
    assert sleeps.waits[1] == 1.0


async def test_a_read_timeout_on_a_create_is_not_retried(client, mock) -> None:
    route = mock.post(f"{BASE}/fine_tuning/jobs").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(ProviderConnectionError) as info:
        await client.post("/fine_tuning/jobs", json={})
    assert route.call_count == 1
    assert "timed out after 60s" in str(info.value)


async def test_idempotent_posts_are_retried_like_reads(client, mock) -> None:
    route = mock.post(f"{BASE}/fine_tuning/alpha/graders/run").mock(
        side_effect=[httpx.Response(503), httpx.Response(200, json={"reward": 1})]
    )
    await client.post("/fine_tuning/alpha/graders/run", json={}, idempotent=True)
    assert route.call_count == 2


async def test_timeouts_on_reads_are_retried_then_raised(client, mock) -> None:
    route = mock.get(f"{BASE}/x").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(ProviderConnectionError) as info:
        await client.get("/x")
    assert route.call_count == 3
    assert "GET /x timed out" in str(info.value)
    assert "gave up after 3 attempts" in str(info.value)


async def test_a_retry_after_beyond_the_cap_is_raised_with_the_hint(mock, sleeps) -> None:
    client = OpenAICompatClient(
        provider="openai", base_url=BASE, retry=RetryPolicy(max_retry_after=60), sleep=sleeps
    )
    mock.get(f"{BASE}/x").mock(return_value=openai_error(429, "quota", **{"retry-after": "3600"}))
    with pytest.raises(RateLimitError) as info:
        await client.get("/x")
    assert info.value.retry_after == 3600
    assert sleeps.waits == []  # we never sleep an hour inside a call


async def test_x_should_retry_false_stops_retrying(client, mock) -> None:
    route = mock.get(f"{BASE}/x").mock(
        return_value=httpx.Response(500, headers={"x-should-retry": "false"})
    )
    with pytest.raises(ServerError):
        await client.get("/x")
    assert route.call_count == 1


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(initial_delay=1, max_delay=5, jitter=0.0)
    assert [policy.backoff(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 5, 5]
    jittery = RetryPolicy(initial_delay=1, max_delay=5, jitter=0.5)
    draws = {jittery.backoff(1, rng=random.Random(seed)) for seed in range(20)}
    assert len(draws) > 1 and all(0.5 <= d <= 1 for d in draws)


# --- error mapping ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (422, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, ProviderAPIError),
        (501, ServerError),
    ],
)
async def test_statuses_map_to_the_error_tree(client, mock, status, cls) -> None:
    mock.post(f"{BASE}/x").mock(return_value=openai_error(status, "nope", code="c"))
    with pytest.raises(cls) as info:
        await client.post("/x", json={})
    assert type(info.value) is cls
    assert info.value.status_code == status
    assert info.value.provider == "openai"
    assert isinstance(info.value.__cause__, httpx.HTTPStatusError)


async def test_400_carries_param_code_and_request_id(client, mock) -> None:
    mock.post(f"{BASE}/fine_tuning/jobs").mock(
        return_value=openai_error(
            400,
            "Invalid type for 'graders.input': expected an object",
            param="method.reinforcement.grader",
            code="invalid_type",
            **{"x-request-id": "req_abc"},
        )
    )
    with pytest.raises(BadRequestError) as info:
        await client.post("/fine_tuning/jobs", json={})
    error = info.value
    assert error.param == "method.reinforcement.grader"
    assert error.code == "invalid_type"
    assert error.request_id == "req_abc"
    assert "expected an object" in str(error) and "req_abc" in str(error)
    again = pickle.loads(pickle.dumps(error))  # errors cross worker processes intact
    assert (again.param, again.request_id, str(again)) == (error.param, "req_abc", str(error))


async def test_azure_envelope_and_apim_request_id(client, mock) -> None:
    body = {
        "error": {
            "code": "invalidPayload",
            "message": "The job is invalid",
            "target": "suffix",
            "innererror": {"code": "invalidSuffix"},
        }
    }
    mock.post(f"{BASE}/x").mock(
        return_value=httpx.Response(400, json=body, headers={"apim-request-id": "apim-1"})
    )
    with pytest.raises(BadRequestError) as info:
        await client.post("/x", json={})
    assert (info.value.code, info.value.param, info.value.request_id) == (
        "invalidPayload",
        "suffix",
        "apim-1",
    )
    assert "invalidSuffix" in str(info.value)


async def test_an_html_error_page_is_kept_as_text(client, mock) -> None:
    mock.get(f"{BASE}/x").mock(return_value=httpx.Response(404, text="<html>gateway</html>"))
    with pytest.raises(NotFoundError) as info:
        await client.get("/x")
    assert "<html>gateway</html>" in str(info.value)


async def test_malformed_json_on_success_is_a_provider_error(client, mock) -> None:
    mock.get(f"{BASE}/x").mock(return_value=httpx.Response(200, text='{"id": "ftjob-1", '))
    with pytest.raises(ProviderAPIError) as info:
        await client.get("/x")
    assert info.value.code == "malformed_response"
    assert "not JSON" in str(info.value)


async def test_a_page_without_data_is_a_provider_error(client, mock) -> None:
    mock.get(f"{BASE}/fine_tuning/jobs").mock(return_value=httpx.Response(200, json={"x": 1}))
    with pytest.raises(ProviderAPIError, match="a list page"):
        [item async for item in client.paginate("/fine_tuning/jobs")]


async def test_connection_errors_are_provider_connection_errors(client, mock) -> None:
    mock.get(f"{BASE}/x").mock(side_effect=httpx.ConnectError("name resolution failed"))
    with pytest.raises(ProviderConnectionError, match="could not reach the backend"):
        await client.get("/x")


# --- secrets ------------------------------------------------------------------------------------


async def test_secrets_never_reach_errors_or_logs(client, mock, caplog) -> None:
    echoed = f"Incorrect API key provided: {SECRET}. Header was 'Bearer {SECRET}'"
    mock.get(f"{BASE}/x").mock(return_value=openai_error(401, echoed))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AuthenticationError) as info:
        await client.get("/x")
    texts = [str(info.value), repr(info.value), repr(vars(info.value)), repr(client), caplog.text]
    assert "***" in str(info.value)
    for text in texts:
        assert SECRET not in text
        assert SECRET[6:] not in text  # not even the tail after the sk- prefix


def test_mask_covers_tokens_keys_and_nested_bodies() -> None:
    body = {"error": {"message": "key sk-proj-abcdefgh12 and Bearer eyJhbGciOi.xyz.abc"}}
    masked = mask({"a": [body, "my-own-secret"]}, ["my-own-secret"])
    text = repr(masked)
    assert "abcdefgh12" not in text and "eyJhbGciOi" not in text and "my-own-secret" not in text


def test_map_http_errors_maps_a_raw_httpx_error() -> None:
    request = httpx.Request("GET", f"{BASE}/x")
    response = httpx.Response(403, json={"error": "forbidden"}, request=request)
    with pytest.raises(PermissionDeniedError, match="forbidden"), map_http_errors("azure"):
        response.raise_for_status()


# --- pagination ---------------------------------------------------------------------------------


async def test_pagination_follows_the_cursor_until_has_more_is_false(client, mock) -> None:
    def page(request: httpx.Request) -> httpx.Response:
        after = request.url.params.get("after")
        if after is None:
            return httpx.Response(200, json={"data": [{"id": "a"}, {"id": "b"}], "has_more": True})
        if after == "b":
            body = {"data": [{"id": "c"}], "has_more": True, "last_id": "c"}
            return httpx.Response(200, json=body)
        return httpx.Response(200, json={"data": [{"id": "d"}], "has_more": False})

    route = mock.get(f"{BASE}/items").mock(side_effect=page)
    items = [item["id"] async for item in client.paginate("/items", params={"k": "v"}, page_size=2)]
    assert items == ["a", "b", "c", "d"]
    sent = [dict(call.request.url.params) for call in route.calls]
    assert sent == [
        {"k": "v", "limit": "2"},
        {"k": "v", "limit": "2", "after": "b"},
        {"k": "v", "limit": "2", "after": "c"},
    ]


async def test_pagination_stops_at_limit_and_on_a_repeated_cursor(client, mock) -> None:
    stuck = {"data": [{"id": "a"}], "has_more": True}
    route = mock.get(f"{BASE}/items").mock(return_value=httpx.Response(200, json=stuck))
    assert [i["id"] async for i in client.paginate("/items")] == ["a", "a"]
    assert route.call_count == 2  # the second page repeated the cursor: stop, don't loop
    assert [i["id"] async for i in client.paginate("/items", limit=1)] == ["a"]


async def test_fixed_query_and_headers_ride_on_every_request(mock) -> None:
    client = OpenAICompatClient(
        provider="azure",
        base_url="https://res.test/openai",
        headers={"X-Fixed": "1"},
        query={"api-version": "2025-04-01-preview"},
    )
    route = mock.get("https://res.test/openai/files").mock(
        return_value=httpx.Response(200, json={"data": [], "has_more": False})
    )
    await client.get("/files", params={"limit": 5})
    request = route.calls.last.request
    assert request.url.params["api-version"] == "2025-04-01-preview"
    assert request.url.params["limit"] == "5"
    assert request.headers["x-fixed"] == "1"
    await client.aclose()
    await client.aclose()  # idempotent


async def test_auth_is_asked_before_every_attempt(mock, sleeps) -> None:
    tokens = iter(["t1", "t2"])

    async def auth() -> dict[str, str]:
        return {"Authorization": f"Bearer {next(tokens)}"}

    client = OpenAICompatClient(provider="azure", base_url=BASE, auth=auth, sleep=sleeps)
    route = mock.get(f"{BASE}/x").mock(side_effect=[httpx.Response(503), httpx.Response(200)])
    await client.get("/x")
    assert [c.request.headers["authorization"] for c in route.calls] == ["Bearer t1", "Bearer t2"]


async def test_redirects_are_not_followed(client, mock) -> None:
    # An api-key header must never be replayed to another origin.
    mock.get(f"{BASE}/x").mock(
        return_value=httpx.Response(307, headers={"location": "https://evil.test/x"})
    )
    evil = mock.get("https://evil.test/x").mock(return_value=httpx.Response(200, json={}))
    with pytest.raises(ProviderAPIError):
        await client.get("/x")
    assert not evil.called
