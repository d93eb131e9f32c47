"""The ``azure`` provider: both routes, both auth modes, Azure's quirks, and ARM deployment."""

from __future__ import annotations

import json
import logging
import sys
import time
from types import SimpleNamespace

import httpx
import pytest
from azure.core.exceptions import ClientAuthenticationError

from rlft._models import Checkpoint, Hyperparameters, JobStatus
from rlft.exceptions import (
    ConfigurationError,
    MissingDependencyError,
    NotFoundError,
    ProviderAPIError,
    ProviderConnectionError,
    UsageError,
)
from rlft.openai_compat import idempotency_tag
from rlft_providers.azure._auth import CredentialSource, EntraToken
from rlft_providers.azure._provider import AzureProvider
from rlft_providers.azure._settings import ARM_API_VERSION, DEFAULT_SCOPE, AzureSettings

pytestmark = pytest.mark.anyio

ENDPOINT = "https://res.openai.azure.com"
CLASSIC = f"{ENDPOINT}/openai"
V1 = f"{ENDPOINT}/openai/v1"
KEY = "azure-test-CANARY-key-0123456789"
VERSION = "2025-04-01-preview"
ARM = "https://management.azure.com"


class FakeCredential:
    """An ``azure.identity.aio`` credential stand-in: counts token requests, never expires
    unless told."""

    def __init__(self, *, lifetime: float = 3600, fail: Exception | None = None) -> None:
        self.scopes: list[tuple[str, ...]] = []
        self.lifetime = lifetime
        self.fail = fail
        self.closed = False
        self.now = time.time()

    async def get_token(self, *scopes: str) -> SimpleNamespace:
        if self.fail is not None:
            raise self.fail
        self.scopes.append(scopes)
        return SimpleNamespace(
            token=f"entra-token-{len(self.scopes)}", expires_on=self.now + self.lifetime
        )

    async def close(self) -> None:
        self.closed = True


def job_json(job_id: str = "ftjob-1", status: str = "pending", **extra) -> dict:
    return {
        "id": job_id,
        "object": "fine_tuning.job",
        "status": status,
        "model": "o4-mini",
        **extra,
    }


def empty() -> httpx.Response:
    return httpx.Response(200, json={"object": "list", "data": [], "has_more": False})


def make(mock, sleeps, **settings) -> AzureProvider:
    credential = settings.pop("credential", None)
    merged = {"endpoint": ENDPOINT, "api_key": KEY, **settings}
    return AzureProvider(settings=AzureSettings(**merged), sleep=sleeps, credential=credential)


# --- configuration ------------------------------------------------------------------------------


def test_no_endpoint_names_the_env_var_and_the_file_key() -> None:
    with pytest.raises(ConfigurationError, match="AZURE_OPENAI_ENDPOINT.*rlft.toml"):
        AzureProvider(settings=AzureSettings(api_key=KEY))


def test_api_key_mode_without_a_key_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="AZURE_OPENAI_API_KEY"):
        AzureProvider(settings=AzureSettings(endpoint=ENDPOINT, auth="api_key"))


@pytest.mark.parametrize(
    "pasted",
    [ENDPOINT, f"{ENDPOINT}/", f"{ENDPOINT}/openai", f"{ENDPOINT}/openai/v1/"],
)
def test_a_pasted_route_suffix_is_removed(pasted: str) -> None:
    assert AzureSettings(endpoint=pasted).endpoint == ENDPOINT


def test_an_endpoint_without_a_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="https://"):
        AzureSettings(endpoint="res.openai.azure.com")


# --- routes and auth ----------------------------------------------------------------------------


async def test_classic_route_sends_api_version_and_api_key(mock, sleeps) -> None:
    provider = make(mock, sleeps)
    route = mock.get(f"{CLASSIC}/fine_tuning/jobs/ftjob-1").respond(json=job_json())
    record = await provider.get_job("ftjob-1")
    request = route.calls.last.request
    assert request.url.params["api-version"] == VERSION
    assert request.headers["api-key"] == KEY
    assert "authorization" not in request.headers
    assert record.provider == "azure" and record.status is JobStatus.PENDING


async def test_v1_route_has_no_api_version(mock, sleeps) -> None:
    provider = make(mock, sleeps, api="v1", api_version="ignored")
    route = mock.get(f"{V1}/fine_tuning/jobs/ftjob-1").respond(json=job_json())
    await provider.get_job("ftjob-1")
    assert "api-version" not in route.calls.last.request.url.params


async def test_entra_tokens_are_fetched_once_and_reused(mock, sleeps) -> None:
    credential = FakeCredential()
    scope = "https://ai.azure.com/.default"
    provider = make(mock, sleeps, api="v1", api_key=None, entra_scope=scope, credential=credential)
    assert provider.auth_mode == "entra"
    route = mock.get(f"{V1}/fine_tuning/jobs/ftjob-1").respond(json=job_json())
    await provider.get_job("ftjob-1")
    await provider.get_job("ftjob-1")
    assert credential.scopes == [(scope,)]  # one token, reused
    assert route.calls.last.request.headers["authorization"] == "Bearer entra-token-1"
    assert "api-key" not in route.calls.last.request.headers
    await provider.aclose()
    assert not credential.closed  # an injected credential belongs to the caller


async def test_entra_tokens_refresh_before_they_expire() -> None:
    credential = FakeCredential(lifetime=1000)
    now = [credential.now]
    token = EntraToken(
        provider="azure",
        scope=DEFAULT_SCOPE,
        source=CredentialSource(credential),
        refresh_margin=300,
        clock=lambda: now[0],
    )
    assert await token.token() == "entra-token-1"
    now[0] += 600  # 400 s left: still fresh
    assert await token.token() == "entra-token-1"
    now[0] += 150  # 250 s left: inside the margin, refresh
    credential.now = now[0]
    assert await token.token() == "entra-token-2"
    assert credential.scopes == [(DEFAULT_SCOPE,), (DEFAULT_SCOPE,)]
    assert "entra-token" not in repr(token)


async def test_entra_without_azure_identity_names_the_extra(mock, sleeps, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "azure.identity.aio", None)  # import fails
    provider = make(mock, sleeps, api_key=None)
    mock.get(f"{CLASSIC}/fine_tuning/jobs/ftjob-1").respond(json=job_json())
    with pytest.raises(MissingDependencyError, match=r"pip install 'rlft\[azure\]'"):
        await provider.get_job("ftjob-1")


async def test_entra_without_a_signed_in_identity_names_both_fixes(mock, sleeps) -> None:
    failing = FakeCredential(fail=ClientAuthenticationError("DefaultAzureCredential failed"))
    provider = make(mock, sleeps, api_key=None, credential=failing)
    with pytest.raises(ConfigurationError, match="az login.*AZURE_OPENAI_API_KEY"):
        await provider.get_job("ftjob-1")


async def test_a_credential_network_failure_is_a_connection_error(mock, sleeps) -> None:
    provider = make(mock, sleeps, api_key=None, credential=FakeCredential(fail=OSError("down")))
    with pytest.raises(ProviderConnectionError, match="Entra ID token"):
        await provider.get_job("ftjob-1")


# --- create -------------------------------------------------------------------------------------


async def test_create_sends_training_type_and_is_otherwise_openai_shaped(
    mock, sleeps, spec, make_request, openai_shaped
) -> None:
    provider = make(mock, sleeps, training_type="Standard")
    lookup = mock.get(f"{CLASSIC}/fine_tuning/jobs").mock(return_value=empty())
    create = mock.post(f"{CLASSIC}/fine_tuning/jobs").respond(201, json=job_json())
    record = await provider.create_job(make_request(spec, target="azure"))
    assert record.id == "ftjob-1"
    assert lookup.calls.last.request.url.params["api-version"] == VERSION
    body = json.loads(create.calls.last.request.content)
    # Azure-only top-level field, spelled as Microsoft's scripts send it.
    assert body.pop("trainingType") == "standard"
    assert body["method"]["type"] == "reinforcement"
    body.pop("suffix")  # the classic route's key tag: checked in its own test
    openai_shaped(json.dumps(body).encode())


@pytest.mark.parametrize(
    ("written", "sent"),
    [
        ("Standard", "standard"),
        ("GLOBALSTANDARD", "globalStandard"),
        ("GlobalStandard", "globalStandard"),
        ("developertier", "developerTier"),
    ],
)
async def test_provider_options_override_the_training_type_in_its_documented_spelling(
    mock, sleeps, spec, make_request, written, sent
):
    provider = make(mock, sleeps, training_type="Standard")
    options = {"trainingType": written}
    spec = spec.model_copy(update={"hyperparameters": Hyperparameters(provider_options=options)})
    mock.get(f"{CLASSIC}/fine_tuning/jobs").mock(return_value=empty())
    create = mock.post(f"{CLASSIC}/fine_tuning/jobs").respond(201, json=job_json())
    await provider.create_job(make_request(spec, target="azure"))
    assert json.loads(create.calls.last.request.content)["trainingType"] == sent


@pytest.mark.parametrize("written", ["developer", "GLOBAL_STANDARD"])
def test_an_unknown_training_type_is_refused_naming_the_values_and_source(
    azure_provider, spec, written
) -> None:
    options = {"trainingType": written}
    spec = spec.model_copy(update={"hyperparameters": Hyperparameters(provider_options=options)})
    with pytest.raises(UsageError) as info:
        azure_provider.check_spec(spec)
    text = str(info.value)
    assert "provider_options.trainingType" in text
    assert '"globalStandard", "standard" or "developerTier"' in text
    assert "submit_training.py" in text


def test_settings_spell_the_training_type_and_refuse_others() -> None:
    assert AzureSettings(training_type="GLOBALSTANDARD").training_type == "globalStandard"
    with pytest.raises(ValueError, match="globalStandard, standard, developerTier"):
        AzureSettings(training_type="premium")


async def test_the_classic_route_sends_no_metadata_and_tags_the_suffix(
    mock, sleeps, spec, make_request
) -> None:
    provider = make(mock, sleeps)
    lookup = mock.get(f"{CLASSIC}/fine_tuning/jobs").mock(return_value=empty())
    create = mock.post(f"{CLASSIC}/fine_tuning/jobs").respond(201, json=job_json())
    named = spec.model_copy(update={"name": "triage"})
    await provider.create_job(make_request(named, target="azure", key="idem-key-1"))
    body = json.loads(create.calls.last.request.content)
    assert "metadata" not in body
    assert body["suffix"] == f"triage-{idempotency_tag('idem-key-1')}"
    # The spec lists no metadata filter: the lookup sends none.
    assert not [k for k in lookup.calls.last.request.url.params if k.startswith("metadata")]


async def test_the_classic_route_finds_a_lost_create_by_its_suffix_tag(
    mock, sleeps, spec, make_request
) -> None:
    provider = make(mock, sleeps)
    tag = idempotency_tag("idem-key-1")
    now = int(time.time())
    jobs = [
        job_json("ftjob-other", suffix=f"rlft-{idempotency_tag('x')}", created_at=now),
        job_json("ftjob-other-model", suffix=f"rlft-{tag}", model="gpt-4.1", created_at=now - 30),
        # Created as "o4-mini-2025-04-16"; a service may answer with the model's short name.
        job_json("ftjob-mine", suffix=f"rlft-{tag}", model="o4-mini", created_at=now - 60),
    ]
    mock.get(f"{CLASSIC}/fine_tuning/jobs").respond(
        json={"object": "list", "data": jobs, "has_more": False}
    )
    create = mock.post(f"{CLASSIC}/fine_tuning/jobs").respond(201, json=job_json())
    record = await provider.create_job(make_request(spec, target="azure", key="idem-key-1"))
    assert record.id == "ftjob-mine" and not create.called


async def test_the_suffix_tag_lookup_stops_at_the_creation_window(
    mock, sleeps, spec, make_request
) -> None:
    provider = make(mock, sleeps)
    tag = idempotency_tag("idem-key-1")
    old = int(time.time()) - 8 * 24 * 3600  # older than the 7-day window: a deliberate rerun
    jobs = [job_json("ftjob-old", suffix=f"rlft-{tag}", model=spec.model, created_at=old)]
    mock.get(f"{CLASSIC}/fine_tuning/jobs").respond(
        json={"object": "list", "data": jobs, "has_more": False}
    )
    create = mock.post(f"{CLASSIC}/fine_tuning/jobs").respond(201, json=job_json("ftjob-new"))
    record = await provider.create_job(make_request(spec, target="azure", key="idem-key-1"))
    assert record.id == "ftjob-new" and create.called


async def test_the_v1_route_sends_metadata_and_checks_it_without_a_filter(
    mock, sleeps, spec, make_request
) -> None:
    provider = make(mock, sleeps, api="v1")
    found = job_json("ftjob-9", metadata={"rlft_idempotency_key": "idem-key-1"})
    lookup = mock.get(f"{V1}/fine_tuning/jobs").respond(
        json={"object": "list", "data": [job_json("ftjob-8", metadata={}), found]}
    )
    create = mock.post(f"{V1}/fine_tuning/jobs").respond(201, json=job_json())
    record = await provider.create_job(make_request(spec, target="azure", key="idem-key-1"))
    assert record.id == "ftjob-9" and not create.called
    assert not [k for k in lookup.calls.last.request.url.params if k.startswith("metadata")]
    mock.get(f"{V1}/fine_tuning/jobs").mock(return_value=empty())
    await provider.create_job(make_request(spec, target="azure", key="idem-key-2"))
    body = json.loads(create.calls.last.request.content)
    assert body["metadata"] == {"rlft_idempotency_key": "idem-key-2"}
    assert "suffix" not in body


async def test_reasoning_effort_default_is_not_sent_to_azure(
    mock, sleeps, spec, make_request
) -> None:
    provider = make(mock, sleeps)
    spec = spec.model_copy(
        update={"hyperparameters": Hyperparameters(reasoning_effort="default", epochs=2)}
    )
    mock.get(f"{CLASSIC}/fine_tuning/jobs").mock(return_value=empty())
    create = mock.post(f"{CLASSIC}/fine_tuning/jobs").respond(201, json=job_json())
    await provider.create_job(make_request(spec, target="azure"))
    sent = json.loads(create.calls.last.request.content)["method"]["reinforcement"]
    assert sent["hyperparameters"] == {"n_epochs": 2}


def test_a_reasoning_effort_azure_does_not_list_is_refused_naming_the_source(
    azure_provider, spec
) -> None:
    options = {"reasoning_effort": "auto"}
    spec = spec.model_copy(update={"hyperparameters": Hyperparameters(provider_options=options)})
    with pytest.raises(UsageError) as info:
        azure_provider.check_spec(spec)
    text = str(info.value)
    assert 'allowed "low", "medium" or "high"' in text
    assert "Azure OpenAI 2025-04-01-preview spec" in text


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"validation": None}, "needs a validation set"),
        ({"name": "ticket triage"}, "a-z, A-Z, 0-9, - and _"),
        ({"name": "x" * 41}, "1 to 40 characters"),
        (
            {"hyperparameters": Hyperparameters(provider_options={"training_type": "x"})},
            "trainingType",
        ),
    ],
)
def test_azure_request_rules(azure_provider, spec, update, message) -> None:
    with pytest.raises(UsageError, match=message):
        azure_provider.check_spec(spec.model_copy(update=update))


def test_a_valid_azure_suffix_passes(azure_provider, spec) -> None:
    # 31 characters: the suffix's 40 less the "-" and 8-character key tag of the classic route.
    azure_provider.check_spec(spec.model_copy(update={"name": "triage_v2-" + "a" * 21}))
    with pytest.raises(UsageError, match="at most 31"):
        azure_provider.check_spec(spec.model_copy(update={"name": "triage_v2-" + "a" * 22}))


# --- statuses, events, errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("native", "neutral"),
    [
        ("created", JobStatus.PENDING),
        ("pending", JobStatus.PENDING),
        ("pausing", JobStatus.PAUSING),
        ("resuming", JobStatus.RUNNING),
        ("cancelled", JobStatus.CANCELLED),
    ],
)
async def test_azure_statuses(mock, sleeps, native, neutral) -> None:
    provider = make(mock, sleeps)
    mock.get(f"{CLASSIC}/fine_tuning/jobs/ftjob-1").respond(json=job_json(status=native))
    record = await provider.get_job("ftjob-1")
    assert (record.status, record.provider_status) == (neutral, native)


async def test_azure_warning_events(mock, sleeps) -> None:
    provider = make(mock, sleeps)
    data = [{"id": "e1", "created_at": 1, "level": "warning", "message": "auto-paused at $5,000"}]
    mock.get(f"{CLASSIC}/fine_tuning/jobs/ftjob-1/events").respond(
        json={"data": data, "has_more": False}
    )
    (event,) = await provider.list_events("ftjob-1")
    assert event.level == "warning" and event.message == "auto-paused at $5,000"


async def test_azure_error_envelope_on_a_pause_that_cannot_happen(mock, sleeps) -> None:
    provider = make(mock, sleeps)
    mock.post(f"{CLASSIC}/fine_tuning/jobs/ftjob-1/pause").respond(
        409,
        json={"error": {"code": "unexpectedEntityState", "message": "The job is not running."}},
        headers={"apim-request-id": "apim-42"},
    )
    with pytest.raises(ProviderAPIError) as info:
        await provider.pause_job("ftjob-1")
    error = info.value
    assert (error.status_code, error.code, error.request_id) == (
        409,
        "unexpectedEntityState",
        "apim-42",
    )
    assert "cannot pause in its current state" in str(error)


async def test_graders_on_the_classic_route_point_to_v1(mock, sleeps) -> None:
    provider = make(mock, sleeps)
    mock.post(f"{CLASSIC}/fine_tuning/alpha/graders/validate").respond(
        404, json={"error": {"code": "404", "message": "Resource not found"}}
    )
    with pytest.raises(NotFoundError, match='api = "v1"'):
        await provider.validate_grader({"type": "string_check", "name": "x"})


async def test_graders_on_v1(mock, sleeps) -> None:
    provider = make(mock, sleeps, api="v1")
    route = mock.post(f"{V1}/fine_tuning/alpha/graders/run").respond(
        json={"reward": 1.0, "metadata": {"errors": {}}, "sub_rewards": {}}
    )
    result = await provider.run_grader({"type": "string_check"}, sample="billing", item={})
    assert result.score == 1.0 and route.called


async def test_unsupported_api_version_says_what_to_change(mock, sleeps) -> None:
    provider = make(mock, sleeps, api_version="1999-01-01")
    mock.get(f"{CLASSIC}/fine_tuning/jobs/ftjob-1").respond(
        400,
        json={
            "error": {"code": "UnsupportedApiVersionValue", "message": "Unsupported api version"}
        },
    )
    with pytest.raises(ProviderAPIError, match="api_version"):
        await provider.get_job("ftjob-1")


async def test_the_key_never_leaks(mock, sleeps, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    provider = make(mock, sleeps)
    mock.get(f"{CLASSIC}/fine_tuning/jobs/ftjob-1").respond(
        401, json={"error": {"code": "401", "message": f"Access denied: key {KEY} is invalid"}}
    )
    with pytest.raises(ProviderAPIError) as info:
        await provider.get_job("ftjob-1")
    for text in (str(info.value), repr(info.value.body), repr(provider), caplog.text):
        assert KEY not in text
    assert "Check AZURE_OPENAI_API_KEY" in str(info.value)


# --- deployment through ARM ---------------------------------------------------------------------

DEPLOY = (
    f"{ARM}/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.CognitiveServices"
    "/accounts/res/deployments"
)


def checkpoint(**overrides) -> Checkpoint:
    fields = {
        "id": "ftchkpt-e559c011ecc04fc68eaa339d8227d02d",
        "job_id": "ftjob-abc",
        "step": 20,
        "model": "o4-mini-2025-04-16.ft-abc:ckpt-step-20",
    }
    return Checkpoint(**{**fields, **overrides})


async def test_deploy_puts_the_documented_arm_shape(mock, sleeps) -> None:
    credential = FakeCredential()
    provider = make(
        mock, sleeps, subscription_id="sub-1", resource_group="rg-1", credential=credential
    )
    route = mock.put(f"{DEPLOY}/triage-prod").respond(
        201, json={"name": "triage-prod", "properties": {"provisioningState": "Creating"}}
    )
    assert await provider.deploy_checkpoint(checkpoint(), name="triage-prod") == "triage-prod"
    request = route.calls.last.request
    assert request.url.params["api-version"] == ARM_API_VERSION == "2025-09-01"
    assert request.headers["authorization"] == "Bearer entra-token-1"
    assert credential.scopes == [("https://management.azure.com/.default",)]
    assert json.loads(request.content) == {
        "sku": {"name": "standard", "capacity": 1},
        "properties": {
            "model": {
                "format": "OpenAI",
                "name": "ftchkpt-e559c011ecc04fc68eaa339d8227d02d",  # a checkpoint: by id
                "version": "1",
            }
        },
    }


@pytest.mark.parametrize(
    "checkpoint_id",
    [
        "ftchkpt-e559c011ecc04fc68eaa339d8227d02d",  # MS Learn's deploy page
        "ftckpt_qtZ5Gyk4BLq1SfLFWp3RtO3P",  # the REST spec's checkpoints example
    ],
)
async def test_both_checkpoint_id_forms_deploy_by_id(mock, sleeps, checkpoint_id) -> None:
    provider = make(
        mock, sleeps, subscription_id="sub-1", resource_group="rg-1", credential=FakeCredential()
    )
    route = mock.put(f"{DEPLOY}/d").respond(201, json={})
    await provider.deploy_checkpoint(checkpoint(id=checkpoint_id), name="d")
    assert json.loads(route.calls.last.request.content)["properties"]["model"]["name"] == (
        checkpoint_id
    )


async def test_deploy_a_final_model_by_name_with_a_default_deployment_name(mock, sleeps) -> None:
    provider = make(
        mock,
        sleeps,
        subscription_id="sub-1",
        resource_group="rg-1",
        account_name="res",
        deployment_sku="globalstandard",
        credential=FakeCredential(),
    )
    final = checkpoint(id="ftjob-abc", model="o4-mini-2025-04-16.ft-abc", step=None)
    route = mock.put(f"{DEPLOY}/rlft-ftjob-abc-step0").respond(200, json={})
    assert await provider.deploy_checkpoint(final) == "rlft-ftjob-abc-step0"
    body = json.loads(route.calls.last.request.content)
    assert body["properties"]["model"]["name"] == "o4-mini-2025-04-16.ft-abc"
    assert body["sku"]["name"] == "globalstandard"


async def test_deploy_without_arm_settings_names_them(azure_provider) -> None:
    with pytest.raises(ConfigurationError, match="subscription_id and resource_group"):
        await azure_provider.deploy_checkpoint(checkpoint())


async def test_an_arm_refusal_is_mapped(mock, sleeps) -> None:
    provider = make(
        mock, sleeps, subscription_id="sub-1", resource_group="rg-1", credential=FakeCredential()
    )
    mock.put(f"{DEPLOY}/d").respond(
        403,
        json={"error": {"code": "AuthorizationFailed", "message": "no deployments/write"}},
        headers={"x-ms-request-id": "arm-7"},
    )
    with pytest.raises(ProviderAPIError) as info:
        await provider.deploy_checkpoint(checkpoint(), name="d")
    assert (info.value.status_code, info.value.code, info.value.request_id) == (
        403,
        "AuthorizationFailed",
        "arm-7",
    )
    assert "Foundry Owner" in str(info.value)
