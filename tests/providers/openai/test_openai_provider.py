"""The ``openai`` provider, endpoint by endpoint, with respx routes asserting what is sent."""

from __future__ import annotations

import json
import logging
from datetime import date
from email.parser import BytesParser
from email.policy import HTTP

import httpx
import pytest

from rlft._models import Hyperparameters, JobStatus
from rlft.datasets import Dataset
from rlft.exceptions import (
    ConfigurationError,
    DatasetValidationError,
    GraderValidationError,
    HyperparameterError,
    NotFoundError,
    PermissionDeniedError,
    ProviderAPIError,
    ProviderConnectionError,
    ServerError,
    UsageError,
)
from rlft_providers.openai._provider import OpenAIProvider
from rlft_providers.openai._settings import OpenAISettings

pytestmark = pytest.mark.anyio

API = "https://api.openai.com/v1"
KEY = "sk-provider-CANARY-0123456789"


@pytest.fixture
def provider(mock, sleeps) -> OpenAIProvider:
    return OpenAIProvider(settings=OpenAISettings(api_key=KEY), sleep=sleeps)


def job_json(job_id: str = "ftjob-1", status: str = "validating_files", **extra) -> dict:
    body = {
        "id": job_id,
        "object": "fine_tuning.job",
        "created_at": 1_760_000_000,
        "model": "o4-mini-2025-04-16",
        "status": status,
        "fine_tuned_model": None,
        "finished_at": None,
        "error": None,
        "metadata": {"rlft_idempotency_key": "idem-key-1"},
        "user_provided_suffix": None,
        "result_files": [],
        "usage_metrics": {"tokens": 1},  # extra fields are tolerated
        "eval_id": "eval_1",
    }
    body.update(extra)
    return body


def empty_list() -> httpx.Response:
    return httpx.Response(200, json={"object": "list", "data": [], "has_more": False})


# --- configuration ------------------------------------------------------------------------------


def test_a_missing_key_names_both_fixes() -> None:
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY.*settings="):
        OpenAIProvider(settings=OpenAISettings())


async def test_headers_organisation_project_and_base_url(mock) -> None:
    settings = OpenAISettings(
        api_key=KEY, organization="org-1", project="proj-1", base_url="https://proxy.test/v1"
    )
    provider = OpenAIProvider(settings=settings)
    route = mock.get("https://proxy.test/v1/fine_tuning/jobs/ftjob-1").respond(json=job_json())
    await provider.get_job("ftjob-1")
    headers = route.calls.last.request.headers
    assert headers["authorization"] == f"Bearer {KEY}"
    assert headers["openai-organization"] == "org-1"
    assert headers["openai-project"] == "proj-1"


# --- files --------------------------------------------------------------------------------------


async def test_upload_is_multipart_fine_tune_and_waits_until_processed(
    provider, mock, sleeps, spec
) -> None:
    upload = mock.post(f"{API}/files").respond(
        json={"id": "file-1", "object": "file", "status": "uploaded", "filename": "x.jsonl"}
    )
    poll = mock.get(f"{API}/files/file-1").mock(
        side_effect=[
            httpx.Response(200, json={"id": "file-1", "status": "uploaded"}),
            httpx.Response(200, json={"id": "file-1", "status": "processed"}),
        ]
    )
    assert await provider.upload_dataset(spec.train, role="train") == "file-1"
    assert poll.call_count == 2
    assert sleeps.waits == [2.0, 2.0]  # the file poll interval, once per poll

    request = upload.calls.last.request
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    parts = {
        p.get_param("name", header="content-disposition"): p
        for p in BytesParser(policy=HTTP).parsebytes(head + request.content).iter_parts()
    }
    assert parts["purpose"].get_payload(decode=True) == b"fine-tune"
    assert parts["file"].get_filename() == f"rlft-train-{spec.train.content_hash[:12]}.jsonl"
    rows = [json.loads(line) for line in parts["file"].get_payload(decode=True).splitlines()]
    assert len(rows) == len(spec.train)
    assert rows[0]["label"] == "billing" and rows[0]["messages"][0]["role"] == "user"


async def test_a_file_the_service_rejects_is_a_dataset_error(provider, mock, spec) -> None:
    mock.post(f"{API}/files").respond(json={"id": "file-1", "status": "uploaded"})
    mock.get(f"{API}/files/file-1").respond(
        json={"id": "file-1", "status": "error", "status_details": "line 3: invalid role"}
    )
    with pytest.raises(DatasetValidationError, match="line 3: invalid role"):
        await provider.upload_dataset(spec.validation, role="validation")


async def test_a_file_never_processed_times_out_without_real_waiting(mock, sleeps, spec) -> None:
    settings = OpenAISettings(api_key=KEY, file_poll_interval=1, file_processing_timeout=3)
    provider = OpenAIProvider(settings=settings, sleep=sleeps)
    mock.post(f"{API}/files").respond(json={"id": "file-1", "status": "uploaded"})
    poll = mock.get(f"{API}/files/file-1").respond(json={"id": "file-1", "status": "uploaded"})
    with pytest.raises(ProviderConnectionError, match="still 'uploaded' after 3s"):
        await provider.upload_dataset(spec.train, role="train")
    assert poll.call_count == 3 and sleeps.waits == [1, 1, 1]


# --- create -------------------------------------------------------------------------------------


async def test_create_body_is_reinforcement_and_openai_shaped(
    provider, mock, spec, make_request, openai_shaped
) -> None:
    spec = spec.model_copy(
        update={
            "name": "triage-v2",
            "labels": {"team": "support"},
            "hyperparameters": Hyperparameters(
                epochs=2,
                batch_size=8,
                learning_rate_multiplier=0.5,
                eval_interval=5,
                eval_samples=3,
                reasoning_effort="low",
                compute_multiplier=1.5,
                seed=7,
                provider_options={"integrations": [{"type": "wandb", "wandb": {"project": "p"}}]},
            ),
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "t", "strict": True, "schema": {"type": "object"}},
            },
        }
    )
    lookup = mock.get(f"{API}/fine_tuning/jobs").mock(return_value=empty_list())
    create = mock.post(f"{API}/fine_tuning/jobs").respond(json=job_json())
    record = await provider.create_job(make_request(spec))

    assert lookup.calls.last.request.url.params["metadata[rlft_idempotency_key]"] == "idem-key-1"
    request = create.calls.last.request
    assert request.headers["idempotency-key"] == "idem-key-1"
    body = json.loads(request.content)
    rft = body["method"]["reinforcement"]
    assert body["method"]["type"] == "reinforcement"
    assert (body["model"], body["training_file"], body["validation_file"]) == (
        "o4-mini-2025-04-16",
        "file-train",
        "file-valid",
    )
    assert body["suffix"] == "triage-v2" and body["seed"] == 7
    assert body["metadata"] == {"team": "support", "rlft_idempotency_key": "idem-key-1"}
    assert body["integrations"] == [{"type": "wandb", "wandb": {"project": "p"}}]
    assert rft["hyperparameters"] == {
        "n_epochs": 2,
        "batch_size": 8,
        "learning_rate_multiplier": 0.5,
        "compute_multiplier": 1.5,
        "eval_interval": 5,
        "eval_samples": 3,
        "reasoning_effort": "low",
    }
    assert set(rft["grader"]["graders"]) == {"label", "why"}  # a named dict on the wire
    assert rft["response_format"]["json_schema"]["name"] == "t"
    openai_shaped(request.content)

    assert record.id == "ftjob-1" and record.status is JobStatus.PENDING
    assert record.provider_status == "validating_files"
    assert record.raw and record.raw["eval_id"] == "eval_1"


async def test_provider_options_reach_the_hyperparameters(
    provider, mock, spec, make_request, openai_shaped
) -> None:
    options = {"batch_size": "auto", "n_epochs": 3, "extra_body": {"future_field": True}}
    spec = spec.model_copy(update={"hyperparameters": Hyperparameters(provider_options=options)})
    mock.get(f"{API}/fine_tuning/jobs").mock(return_value=empty_list())
    create = mock.post(f"{API}/fine_tuning/jobs").respond(json=job_json())
    await provider.create_job(make_request(spec))
    body = json.loads(create.calls.last.request.content)
    assert body["method"]["reinforcement"]["hyperparameters"] == {
        "batch_size": "auto",
        "n_epochs": 3,
    }
    assert body.pop("future_field") is True  # extra_body: raw fields, sent as given
    openai_shaped(json.dumps(body).encode())


async def test_an_existing_job_with_the_key_is_returned_without_a_second_create(
    provider, mock, spec, make_request
) -> None:
    mock.get(f"{API}/fine_tuning/jobs").respond(
        json={"data": [job_json(status="running")], "has_more": False}
    )
    create = mock.post(f"{API}/fine_tuning/jobs").respond(json=job_json("ftjob-2"))
    record = await provider.create_job(make_request(spec))
    assert record.id == "ftjob-1" and record.status is JobStatus.RUNNING
    assert not create.called


async def test_a_filter_the_backend_ignores_is_checked_client_side(
    provider, mock, spec, make_request
) -> None:
    other = job_json("ftjob-9", metadata={"rlft_idempotency_key": "another-key"})
    mock.get(f"{API}/fine_tuning/jobs").respond(json={"data": [other], "has_more": False})
    create = mock.post(f"{API}/fine_tuning/jobs").respond(json=job_json("ftjob-2"))
    assert (await provider.create_job(make_request(spec))).id == "ftjob-2"
    assert create.called


async def test_an_ambiguous_create_failure_finds_the_job_that_landed(
    provider, mock, spec, make_request
) -> None:
    mock.get(f"{API}/fine_tuning/jobs").mock(
        side_effect=[empty_list(), httpx.Response(200, json={"data": [job_json()]})]
    )
    create = mock.post(f"{API}/fine_tuning/jobs").mock(side_effect=httpx.ReadTimeout("lost"))
    record = await provider.create_job(make_request(spec))
    assert record.id == "ftjob-1"
    assert create.call_count == 1  # looked up, not re-sent


async def test_an_ambiguous_failure_with_no_job_is_raised(provider, mock, spec, make_request):
    mock.get(f"{API}/fine_tuning/jobs").mock(return_value=empty_list())
    mock.post(f"{API}/fine_tuning/jobs").respond(500, json={"error": {"message": "oops"}})
    with pytest.raises(ServerError):
        await provider.create_job(make_request(spec))


ALTERNATIVES = ("'azure'", "'bedrock'", "'local'", "rlft providers")


def on(provider, day: date):
    """The provider as if today were ``day`` (lifecycle hints depend on the date)."""
    provider._today = lambda: day
    return provider


async def test_a_closed_account_gets_the_stop_date_and_the_alternatives(
    provider, mock, spec, make_request
) -> None:
    mock.get(f"{API}/fine_tuning/jobs").mock(return_value=empty_list())
    mock.post(f"{API}/fine_tuning/jobs").respond(
        403,
        json={"error": {"message": "You do not have access to fine-tuning", "code": None}},
        headers={"x-request-id": "req_closed"},
    )
    spec = spec.model_copy(update={"model": "gpt-4.1-2025-04-14"})
    with pytest.raises(PermissionDeniedError) as info:
        await on(provider, date(2026, 12, 3)).create_job(make_request(spec))
    text = str(info.value)
    assert "platform or model is unavailable" in text
    assert "new self-serve fine-tuning jobs stop on 2027-01-06" in text
    assert "developers.openai.com/api/docs/deprecations" in text
    assert all(name in text for name in ALTERNATIVES)
    assert "req_closed" in text


async def test_after_the_stop_any_refused_create_says_it_stopped(
    provider, mock, spec, make_request
) -> None:
    mock.get(f"{API}/fine_tuning/jobs").mock(return_value=empty_list())
    error = {"message": "Fine-tuning job creation is not available", "code": None}
    mock.post(f"{API}/fine_tuning/jobs").respond(400, json={"error": error})
    spec = spec.model_copy(update={"model": "gpt-4.1-2025-04-14"})
    with pytest.raises(ProviderAPIError) as info:
        await on(provider, date(2027, 1, 7)).create_job(make_request(spec))
    assert "jobs stopped on 2027-01-06" in str(info.value)
    assert all(name in str(info.value) for name in ALTERNATIVES)


@pytest.mark.parametrize(
    ("status", "param"),
    [(404, None), (400, "model"), (403, None)],
    ids=["404", "400-param-model", "403"],
)
async def test_o4_mini_refused_after_its_shutdown_names_the_date_and_alternatives(
    provider, mock, spec, make_request, status, param
):
    mock.get(f"{API}/fine_tuning/jobs").mock(return_value=empty_list())
    error = {"message": "The model does not exist", "param": param, "code": "model_not_found"}
    mock.post(f"{API}/fine_tuning/jobs").respond(status, json={"error": error})
    with pytest.raises(ProviderAPIError) as info:
        await on(provider, date(2026, 12, 3)).create_job(make_request(spec))
    text = str(info.value)
    assert info.value.status_code == status and info.value.param == param
    assert "'o4-mini-2025-04-16' is unavailable" in text
    assert "shut down on 2026-10-23" in text and "stop on 2027-01-06" in text
    assert all(name in text for name in ALTERNATIVES)


async def test_a_400_blaming_another_field_is_not_called_a_lifecycle_refusal(
    provider, mock, spec, make_request
):
    mock.get(f"{API}/fine_tuning/jobs").mock(return_value=empty_list())
    error = {"message": "Invalid grader", "param": "method.reinforcement.grader", "code": None}
    mock.post(f"{API}/fine_tuning/jobs").respond(400, json={"error": error})
    with pytest.raises(ProviderAPIError) as info:
        await on(provider, date(2027, 1, 7)).create_job(make_request(spec))
    assert "Invalid grader" in str(info.value)
    assert "2027-01-06" not in str(info.value) and "shut down" not in str(info.value)


async def test_before_its_shutdown_a_missing_model_gets_the_plain_hint(
    provider, mock, spec, make_request
):
    mock.get(f"{API}/fine_tuning/jobs").mock(return_value=empty_list())
    error = {"message": "The model does not exist", "param": "model", "code": "model_not_found"}
    mock.post(f"{API}/fine_tuning/jobs").respond(404, json={"error": error})
    with pytest.raises(ProviderAPIError) as info:
        await on(provider, date(2026, 9, 1)).create_job(make_request(spec))
    assert "'o4-mini-2025-04-16' is unavailable for reinforcement fine-tuning" in str(info.value)
    assert "shut down" not in str(info.value)


# --- check_spec ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"epochs": 51}, "epochs"),
        ({"batch_size": 257}, "batch_size"),
        ({"compute_multiplier": 11.0}, "compute_multiplier"),
        ({"learning_rate": 1e-5}, "learning_rate"),
        ({"samples_per_prompt": 4}, "samples_per_prompt"),
        ({"max_steps": 10}, "max_steps"),
        ({"provider_options": {"n_epochs": 0}}, "provider_options.n_epochs"),
        ({"provider_options": {"reasoning_effort": "auto"}}, "provider_options.reasoning_effort"),
    ],
)
def test_hyperparameters_out_of_range_are_refused(provider, spec, params, name) -> None:
    spec = spec.model_copy(update={"hyperparameters": Hyperparameters(**params)})
    with pytest.raises(HyperparameterError) as info:
        provider.check_spec(spec)
    assert info.value.name == name and info.value.provider == "openai"
    assert "allowed" in str(info.value)


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"model": None}, "name the base model"),
        ({"validation": None}, "needs a validation set"),
        ({"name": "x" * 65}, "1 to 64 characters"),
        ({"labels": {f"k{i}": "v" for i in range(16)}}, "at most 15 labels"),
        ({"labels": {"k": "v" * 513}}, "limit is 512"),
        ({"response_format": {"json_schema": {}}}, "needs a 'type'"),
        ({"response_format": {"type": "json_object"}}, 'the only value is "json_schema"'),
        (
            {
                "hyperparameters": Hyperparameters(
                    provider_options={"integrations": [{"type": "mlflow", "mlflow": {}}]}
                )
            },
            r'"wandb" is the only type \(OpenAI OpenAPI spec 2\.3\.0',
        ),
        (
            {"response_format": {"type": "json_schema", "name": "t", "schema": {}}},
            r"nested as .*OpenAI OpenAPI spec 2\.3\.0: ResponseFormatJsonSchema",
        ),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "t", "x": 1}}},
            r"unknown keys \['x'\]",
        ),
        (
            {
                "validation": Dataset.from_records(
                    [{"messages": [{"role": "user", "content": f"q{i}"}]} for i in range(1001)]
                )
            },
            "limit is 1000",
        ),
        (
            {"hyperparameters": Hyperparameters(provider_options={"n_epoch": 2})},
            "unknown provider_options key 'n_epoch'",
        ),
        (
            {"hyperparameters": Hyperparameters(epochs=2, provider_options={"n_epochs": 3})},
            "set twice",
        ),
    ],
)
def test_request_fields_are_checked_before_upload(provider, spec, update, message) -> None:
    with pytest.raises(UsageError, match=message):
        provider.check_spec(spec.model_copy(update=update))


def test_a_good_spec_passes(provider, spec) -> None:
    provider.check_spec(spec.model_copy(update={"name": "a" * 64, "labels": {"k": "v"}}))


# --- jobs ---------------------------------------------------------------------------------------


async def test_get_keeps_paused_and_unknown_statuses(provider, mock) -> None:
    mock.get(f"{API}/fine_tuning/jobs/ftjob-1").mock(
        side_effect=[
            httpx.Response(200, json=job_json(status="paused")),
            httpx.Response(200, json=job_json(status="brand_new_status")),
            httpx.Response(
                200,
                json=job_json(
                    status="failed",
                    finished_at=1_760_000_100,
                    error={"code": "grader_errors", "message": "too many", "param": None},
                ),
            ),
        ]
    )
    paused = await provider.get_job("ftjob-1")
    assert paused.status is JobStatus.PAUSED and paused.provider_status == "paused"
    unknown = await provider.get_job("ftjob-1")
    assert unknown.status is JobStatus.RUNNING and unknown.provider_status == "brand_new_status"
    failed = await provider.get_job("ftjob-1")
    assert failed.status is JobStatus.FAILED
    assert failed.error and failed.error.code == "grader_errors"
    assert failed.finished_at and failed.finished_at.year == 2025


async def test_job_ids_cannot_walk_to_other_endpoints(provider, mock) -> None:
    route = mock.get(url__regex=r".*").respond(json=job_json())
    await provider.get_job("../files/file-1")
    assert route.calls.last.request.url.raw_path.decode().endswith("/jobs/..%2Ffiles%2Ffile-1")
    with pytest.raises(UsageError):
        await provider.get_job("")


async def test_unknown_job_is_not_found(provider, mock) -> None:
    mock.get(f"{API}/fine_tuning/jobs/nope").respond(
        404, json={"error": {"message": "No such job", "code": "not_found"}}
    )
    with pytest.raises(NotFoundError, match="No such job"):
        await provider.get_job("nope")


async def test_list_jobs_walks_pages_up_to_the_limit(provider, mock) -> None:
    route = mock.get(f"{API}/fine_tuning/jobs").mock(
        side_effect=[
            httpx.Response(200, json={"data": [job_json("a"), job_json("b")], "has_more": True}),
            httpx.Response(200, json={"data": [job_json("c")], "has_more": False}),
        ]
    )
    jobs = await provider.list_jobs(limit=3)
    assert [job.id for job in jobs] == ["a", "b", "c"]
    assert route.calls[1].request.url.params["after"] == "b"


@pytest.mark.parametrize(
    ("action", "status", "neutral"),
    [
        ("cancel", "cancelled", JobStatus.CANCELLED),
        ("pause", "paused", JobStatus.PAUSED),
        ("resume", "queued", JobStatus.PENDING),
    ],
)
async def test_actions_post_and_return_the_job(provider, mock, action, status, neutral) -> None:
    route = mock.post(f"{API}/fine_tuning/jobs/ftjob-1/{action}").respond(
        json=job_json(status=status)
    )
    record = await getattr(provider, f"{action}_job")("ftjob-1")
    assert record.status is neutral
    assert route.calls.last.request.content == b""


async def test_pausing_a_job_that_cannot_pause_says_why(provider, mock, sleeps) -> None:
    route = mock.post(f"{API}/fine_tuning/jobs/ftjob-1/pause").respond(
        400, json={"error": {"message": "Job is not running", "code": "invalid_state"}}
    )
    with pytest.raises(ProviderAPIError) as info:
        await provider.pause_job("ftjob-1")
    assert info.value.status_code == 400 and info.value.code == "invalid_state"
    assert "Job ftjob-1 cannot pause in its current state" in str(info.value)
    assert route.call_count == 1 and sleeps.waits == []


# --- events and checkpoints ---------------------------------------------------------------------

METRICS = {
    "step": 10,
    "total_steps": 20,
    "scores": {
        "train_reward_mean": 0.42,
        "valid_reward_mean": 0.675,
        "graders": [
            {
                "name": "g",
                "type": "score_model",
                "train_reward_mean": 0.44,
                "valid_reward_mean": 0.7,
            }
        ],
    },
    "usage": {
        "graders": [{"name": "g", "model": "gpt-x", "train_prompt_tokens_count": 120741.0}],
        "samples": {"train_reasoning_tokens_mean": 3330.0, "valid_reasoning_tokens_mean": 1948.9},
    },
    "errors": {
        "graders": [
            {
                "name": "g",
                "type": "score_model",
                "train_other_error_mean": 0.1,
                "train_sample_parse_error_mean": 0.05,
                "train_invalid_variable_error_mean": 0.2,
                "valid_other_error_mean": 0.9,
            }
        ]
    },
    "timing": {"step": {"full_iteration": 731.5}, "graders": [{"name": "g", "train_x": 2.69}]},
    "train_mean_reward": 0.42,
    "full_valid_mean_reward": 0.675,
    "full_valid_mean_parse_error": 0.0,
    "reasoning_tokens_mean": 3330.0,
    "completion_tokens_mean": 3376.0,
    "mean_unresponsive_rewards": 0.0,
    "model_graders_token_usage": {
        "gpt-x": {"train_prompt_tokens": 120741, "eval_cached_tokens": 0}
    },
}


def event(event_id: str, at: int, **extra) -> dict:
    return {"object": "fine_tuning.job.event", "id": event_id, "created_at": at, **extra}


async def test_events_are_normalised_oldest_first(provider, mock) -> None:
    newest_first = [
        event("e3", 3, level="info", message="Step 10/20", type="metrics", data=METRICS),
        event("e2", 2, level="warn", message="Grader latency high", type="message"),
        event("e1", 1, level="info", message="Job started"),
    ]
    mock.get(f"{API}/fine_tuning/jobs/ftjob-1/events").respond(
        json={"data": newest_first, "has_more": False}
    )
    events = await provider.list_events("ftjob-1")
    assert [e.id for e in events] == ["e1", "e2", "e3"]
    assert events[1].level == "warning" and events[1].kind == "message"
    metrics = events[2].metrics
    assert events[2].kind == "metrics" and metrics is not None
    assert (metrics.step, metrics.total_steps) == (10, 20)
    assert (metrics.train_reward_mean, metrics.valid_reward_mean) == (0.42, 0.675)
    assert metrics.grader_rewards == {"g": 0.44}
    assert metrics.parse_error_rate == 0.05
    assert metrics.grader_error_rate == pytest.approx(0.3)  # train errors except parse errors
    assert metrics.step_seconds == 731.5 and metrics.completion_length_mean == 3376.0
    assert metrics.tokens["samples/train_reasoning_tokens_mean"] == 3330.0
    assert metrics.tokens["graders/g/train_prompt_tokens_count"] == 120741.0
    assert metrics.tokens["model_graders/gpt-x/train_prompt_tokens"] == 120741
    assert metrics.tokens["reasoning_tokens_mean"] == 3330.0
    assert metrics.extra["graders/g/valid_reward_mean"] == 0.7
    assert metrics.extra["errors/g/valid_other_error_mean"] == 0.9
    assert metrics.extra["timing/graders/g/train_x"] == 2.69
    assert metrics.extra["mean_unresponsive_rewards"] == 0.0
    assert events[2].raw and events[2].raw["data"] == METRICS


async def test_events_after_a_cursor_stop_paging_there(provider, mock) -> None:
    pages = [
        {"data": [event("e5", 5), event("e4", 4)], "has_more": True},
        {"data": [event("e3", 3), event("e2", 2)], "has_more": True},
    ]
    route = mock.get(f"{API}/fine_tuning/jobs/ftjob-1/events").mock(
        side_effect=[httpx.Response(200, json=page) for page in pages]
    )
    events = await provider.list_events("ftjob-1", after="e3")
    assert [e.id for e in events] == ["e4", "e5"]
    assert route.call_count == 2  # the cursor was on page two: page three is never asked for


async def test_checkpoints_keep_free_metrics_and_sort_by_step(provider, mock) -> None:
    def checkpoint(step: int, metrics: dict) -> dict:
        return {
            "object": "fine_tuning.job.checkpoint",
            "id": f"ftckpt_{step}",
            "created_at": 1_760_000_000 + step,
            "fine_tuned_model_checkpoint": f"ft:o4-mini:org::abc:ckpt-step-{step}",
            "fine_tuning_job_id": "ftjob-1",
            "step_number": step,
            "metrics": metrics,
        }

    mock.get(f"{API}/fine_tuning/jobs/ftjob-1/checkpoints").respond(
        json={
            "data": [
                checkpoint(20, {"valid_reward_mean": 0.8, "custom": 1.5}),
                checkpoint(10, {"full_valid_mean_reward": 0.6, "train_loss": 0.3}),
            ],
            "has_more": False,
        }
    )
    first, second = await provider.list_checkpoints("ftjob-1")
    assert (first.step, second.step) == (10, 20)
    assert first.model == "ft:o4-mini:org::abc:ckpt-step-10"
    assert first.metrics.valid_reward_mean == 0.6 and first.metrics.step == 10
    assert second.metrics.extra == {"custom": 1.5}
    assert second.raw and second.raw["metrics"] == {"valid_reward_mean": 0.8, "custom": 1.5}


# --- graders ------------------------------------------------------------------------------------


async def test_validate_grader_sends_the_payload(provider, mock) -> None:
    payload = {
        "type": "string_check",
        "name": "x",
        "input": "a",
        "reference": "b",
        "operation": "eq",
    }
    route = mock.post(f"{API}/fine_tuning/alpha/graders/validate").respond(json={"grader": payload})
    await provider.validate_grader(payload)
    assert json.loads(route.calls.last.request.content) == {"grader": payload}


async def test_an_invalid_grader_is_a_grader_validation_error(provider, mock) -> None:
    mock.post(f"{API}/fine_tuning/alpha/graders/validate").respond(
        400,
        json={
            "error": {
                "message": "Invalid type for 'graders.input': expected an object",
                "param": "graders.input",
            }
        },
    )
    with pytest.raises(GraderValidationError) as info:
        await provider.validate_grader({"type": "multi"})
    assert info.value.path == "graders.input"
    assert "expected an object" in str(info.value)


async def test_run_grader_returns_a_grade_result(provider, mock) -> None:
    answer = {
        "reward": 0.25,
        "metadata": {
            "name": "triage",
            "type": "multi",
            "errors": {
                "sample_parse_error": True,
                "python_grader_runtime_error": True,
                "python_grader_runtime_error_details": "ZeroDivisionError",
                "other_error": False,
            },
            "execution_time": 4.37,
            "token_usage": {"prompt_tokens": 190},  # an object here, an int in the types
        },
        "sub_rewards": {"label": 0.0, "why": 1.25},
    }
    route = mock.post(f"{API}/fine_tuning/alpha/graders/run").respond(json=answer)
    result = await provider.run_grader({"type": "multi"}, sample='{"a": 1}', item={"label": "x"})
    assert json.loads(route.calls.last.request.content) == {
        "grader": {"type": "multi"},
        "model_sample": '{"a": 1}',
        "item": {"label": "x"},
    }
    assert result.score == 0.25 and result.sub_scores == {"label": 0.0, "why": 1.25}
    assert result.errors == ("sample_parse", "python_runtime")
    assert result.reason == "ZeroDivisionError" and result.latency_s == 4.37


# --- result files -------------------------------------------------------------------------------


async def test_download_results_writes_each_file_safely(provider, mock, tmp_path) -> None:
    mock.get(f"{API}/fine_tuning/jobs/ftjob-1").respond(
        json=job_json(status="succeeded", result_files=["file-r1", "file-r2"])
    )
    mock.get(f"{API}/files/file-r1").respond(json={"id": "file-r1", "filename": "results.csv"})
    mock.get(f"{API}/files/file-r2").respond(json={"id": "file-r2", "filename": "../../evil.sh"})
    mock.get(f"{API}/files/file-r1/content").respond(content=b"step,reward\n1,0.5\n")
    mock.get(f"{API}/files/file-r2/content").respond(content=b"echo hi")
    written = await provider.download_results("ftjob-1", tmp_path / "out")
    assert [p.name for p in written] == ["results.csv", "evil.sh"]
    assert all(p.parent == tmp_path / "out" for p in written)
    assert (tmp_path / "out" / "results.csv").read_bytes() == b"step,reward\n1,0.5\n"


# --- secrets ------------------------------------------------------------------------------------


async def test_the_key_never_shows_in_reprs_errors_or_logs(provider, mock, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    mock.get(f"{API}/fine_tuning/jobs/ftjob-1").respond(
        401, json={"error": {"message": f"Incorrect API key provided: {KEY}"}}
    )
    with pytest.raises(ProviderAPIError) as info:
        await provider.get_job("ftjob-1")
    texts = [repr(provider), repr(provider.settings), str(info.value), repr(info.value.body)]
    texts += [caplog.text, repr(provider.client)]
    assert all(KEY not in text for text in texts)
    assert "Check OPENAI_API_KEY" in str(info.value)


async def test_odd_job_shapes_are_parsed_loosely_or_refused_cleanly(provider, mock) -> None:
    route = mock.get(f"{API}/fine_tuning/jobs/ftjob-1")
    route.respond(json={"id": "ftjob-1", "status": None, "fine_tuned_model": 5, "metadata": None})
    record = await provider.get_job("ftjob-1")
    assert record.provider_status == "unknown" and record.status is JobStatus.RUNNING
    assert record.fine_tuned_model is None and record.metadata == {}
    route.respond(json=["not", "a", "job"])
    with pytest.raises(ProviderAPIError, match="unexpected response for a fine-tuning job"):
        await provider.get_job("ftjob-1")


async def test_grader_endpoint_bodies_are_openai_shaped(provider, mock) -> None:
    from openai.types.fine_tuning.alpha.grader_run_params import GraderRunParams
    from openai.types.fine_tuning.alpha.grader_validate_params import GraderValidateParams
    from pydantic import TypeAdapter

    from rlft.graders import StringCheck, compile

    grader = StringCheck(
        name="label", input="{{ sample.output_text }}", reference="{{ item.label }}", operation="ne"
    )
    payload = compile(grader, "openai")
    run = mock.post(f"{API}/fine_tuning/alpha/graders/run").respond(json={"reward": 0.0})
    check = mock.post(f"{API}/fine_tuning/alpha/graders/validate").respond(json={})
    await provider.validate_grader(payload)
    await provider.run_grader(payload, sample="bug", item={"label": "billing"})
    validate_body = json.loads(check.calls.last.request.content)
    run_body = json.loads(run.calls.last.request.content)
    TypeAdapter(GraderValidateParams).validate_python(validate_body, extra="forbid")
    TypeAdapter(GraderRunParams).validate_python(run_body, extra="forbid")
    assert run_body["grader"]["operation"] == "ne"  # the API literal, not the docs' "neq"
