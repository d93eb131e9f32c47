"""Every request the OpenAI and Azure backends send, checked against the providers' own specs.

The specs are pruned copies vendored in ``upstream/`` (provenance in ``upstream/README.md``).
OpenAPI 3.0 / Swagger 2.0 schemas are turned into JSON Schema and checked with ``jsonschema``,
with every object closed (``additionalProperties: false``) so a misspelt field fails. The few
places rlft departs from a spec on purpose are named where they are patched:

1. ``multi.graders`` is a dict keyed by the names ``calculate_output`` uses; the spec types it as
   one grader (https://github.com/openai/openai-java/issues/647). Each entry is checked instead.
2. ``method.reinforcement.response_format`` is absent from OpenAI's spec but in its RFT guide and
   in Azure's v1 spec; it is checked against the spec's ``ResponseFormatJsonSchema``.
3. Azure's ``trainingType`` is in no spec; Microsoft's scripts send it. Its spelling is checked.
4. Azure's classic spec lists only ``supervised`` and ``dpo`` methods; Microsoft's RFT demo sends
   ``reinforcement``, so ``method`` is checked against OpenAI's ``FineTuneMethod``.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from jsonschema import Draft202012Validator

from rlft._models import Hyperparameters
from rlft.graders import Message, Multi, Python, ScoreModel, StringCheck, TextSimilarity
from rlft.openai_compat import Dialect, check_job_spec, to_event
from rlft.testing import FakeFineTuningServer
from rlft_providers.azure._provider import AzureProvider
from rlft_providers.azure._settings import ARM_API_VERSION, TRAINING_TYPES, AzureSettings
from rlft_providers.openai._provider import OpenAIProvider
from rlft_providers.openai._settings import OpenAISettings

pytestmark = pytest.mark.anyio

UPSTREAM = Path(__file__).parent / "upstream"
ROOT = Path(__file__).resolve().parents[3]


def load(name: str) -> dict[str, Any]:
    return json.loads((UPSTREAM / name).read_text())


OPENAI = load("openai_openapi.pruned.json")
AZURE_CLASSIC = load("azure_authoring_2025-04-01-preview.pruned.json")
AZURE_V1 = load("azure_v1.pruned.json")


# --- OpenAPI -> JSON Schema -----------------------------------------------------------------------

_SKIP = {"nullable", "discriminator", "example", "deprecated", "readOnly", "x-oaiMeta"}


def _convert(node: Any, strict: bool, *, part: bool = False) -> Any:
    """OpenAPI 3.0 / Swagger 2.0 schema -> JSON Schema 2020-12. With ``strict``, objects are
    closed: plain ones with ``additionalProperties: false``, ``allOf`` compositions with
    ``unevaluatedProperties: false`` on the whole (their ``part``s stay open)."""
    if isinstance(node, list):
        return [_convert(item, strict) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _SKIP or key.startswith("x-"):
            continue
        if key == "$ref":
            out["$ref"] = "#/$defs/" + value.rsplit("/", 1)[-1]
        elif key == "properties":
            out[key] = {name: _convert(schema, strict) for name, schema in value.items()}
        elif key == "allOf":
            out[key] = [_convert(item, strict, part=True) for item in value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and isinstance(value, bool):
            if value:
                out[key] = node["minimum" if key == "exclusiveMinimum" else "maximum"]
        elif key in ("default", "enum"):
            out[key] = value
        else:
            out[key] = _convert(value, strict)
    for key, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if node.get(key) is True:
            out.pop(bound, None)
    if strict and not part and "additionalProperties" not in node:
        if "allOf" in node:
            out["unevaluatedProperties"] = False
        elif "properties" in node and not any(k in node for k in ("anyOf", "oneOf")):
            out["additionalProperties"] = False
    if node.get("nullable"):
        out = {"anyOf": [out, {"type": "null"}]}
    return out


def _parts(defs: dict[str, Any]) -> set[str]:
    """Schemas used as an ``allOf`` part somewhere: left open, the composition is closed."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for item in node.get("allOf", []):
                if isinstance(item, dict) and "$ref" in item:
                    found.add(item["$ref"].rsplit("/", 1)[-1])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(defs)
    return found


def validator(spec: dict[str, Any], name: str) -> Draft202012Validator:
    """A closed JSON Schema validator for schema ``name`` of an OpenAPI/Swagger document."""
    defs = spec.get("components", {}).get("schemas") or spec.get("definitions") or {}
    parts = _parts(defs)
    schema = {
        "$defs": {key: _convert(value, True, part=key in parts) for key, value in defs.items()},
        "$ref": f"#/$defs/{name}",
    }
    return Draft202012Validator(schema)


def assert_valid(spec: dict[str, Any], name: str, body: Any) -> None:
    errors = sorted(validator(spec, name).iter_errors(body), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message[:300]}" for e in errors)


def query_names(spec: dict[str, Any], path: str, method: str) -> set[str]:
    """The query parameters a spec documents for an operation (``metadata`` is deepObject)."""
    names = set()
    for parameter in spec["paths"][path][method].get("parameters", []):
        if "$ref" in parameter:
            parameter = spec["parameters"][parameter["$ref"].rsplit("/", 1)[-1]]
        if parameter.get("in") == "query":
            names.add(parameter["name"])
    return names


def sent_query(request: httpx.Request) -> set[str]:
    return {key.split("[", 1)[0] for key in request.url.params}


# --- the jobs rlft creates ----------------------------------------------------------------------


def _message(text: str) -> Message:
    return Message(role="user", content=text)


GRADERS = {
    "string_check": StringCheck(
        name="label", input="{{ sample.output_text }}", reference="{{ item.label }}", operation="eq"
    ),
    "text_similarity": TextSimilarity(
        name="why",
        input="{{ sample.output_text }}",
        reference="{{ item.reason }}",
        evaluation_metric="rouge_l",
    ),
    "python": Python(
        name="py",
        source="def grade(sample, item):\n    return float(sample['output_text'] == item['a'])\n",
    ),
    "score_model": ScoreModel(
        name="judge",
        model="gpt-4o-2024-08-06",
        input=[_message("Score {{ sample.output_text }} against {{ item.reason }} from 0 to 1")],
        range=(0.0, 1.0),
    ),
    "multi": Multi(
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
                evaluation_metric="bleu",
            ),
        },
        calculate_output="0.8 * label + 0.2 * why",
    ),
}
FULL_HYPERPARAMETERS = Hyperparameters(
    epochs=3,
    batch_size=8,
    learning_rate_multiplier=1.5,
    compute_multiplier=2.0,
    eval_interval=5,
    eval_samples=4,
    reasoning_effort="medium",
    seed=7,
    provider_options={"integrations": [{"type": "wandb", "wandb": {"project": "rlft"}}]},
)
RESPONSE_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "triage",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"label": {"type": "string"}, "reason": {"type": "string"}},
            "required": ["label", "reason"],
            "additionalProperties": False,
        },
    },
}


def variants(spec, graders) -> list[Any]:
    """A spec per grader type, plus one with every field rlft can send set."""
    jobs = [spec.model_copy(update={"grader": GRADERS[kind]}) for kind in graders]
    full = spec.model_copy(
        update={
            "grader": GRADERS["multi"],
            "name": "triage-v2",
            "labels": {"team": "support"},
            "hyperparameters": FULL_HYPERPARAMETERS,
            "response_format": RESPONSE_FORMAT,
        }
    )
    return [*jobs, full]


async def create_all(provider, server: FakeFineTuningServer, specs, target: str) -> list[Any]:
    """Create each spec through the provider (uploads included); return the create bodies."""
    from rlft._spec import CreateJobRequest
    from rlft.graders import compile as compile_grader

    for index, spec in enumerate(specs):
        training = await provider.upload_dataset(spec.train, role="train")
        validation = await provider.upload_dataset(spec.validation, role="validation")
        await provider.create_job(
            CreateJobRequest(
                spec=spec,
                grader_payload=compile_grader(spec.grader, target),
                training_file=training,
                validation_file=validation,
                idempotency_key=f"key-{index}",
            )
        )
    return [
        json.loads(r.content)
        for r in server.requests
        if r.method == "POST" and r.url.path.endswith("/fine_tuning/jobs")
    ]


SUB_GRADERS = {
    "string_check": "GraderStringCheck",
    "text_similarity": "GraderTextSimilarity",
    "python": "GraderPython",
    "score_model": "GraderScoreModel",
    "label_model": "GraderLabelModel",
}


def patch_multi(grader: dict[str, Any]) -> dict[str, Any]:
    """Deviation 1: check each named sub-grader, then stand one in for the dict."""
    grader = copy.deepcopy(grader)
    if grader["type"] == "multi":
        subs = grader["graders"]
        assert isinstance(subs, dict) and subs, "multi.graders must be a named dict"
        for sub in subs.values():
            assert_valid(OPENAI, SUB_GRADERS[sub["type"]], sub)
        grader["graders"] = next(iter(subs.values()))
    return grader


def check_openai_method(method: dict[str, Any], *, graders: tuple[str, ...] | None = None) -> None:
    """``method`` against OpenAI's FineTuneMethod, with deviations 1 and 2 patched out."""
    method = copy.deepcopy(method)
    rft = method["reinforcement"]
    response_format = rft.pop("response_format", None)
    if response_format is not None:
        assert_valid(OPENAI, "ResponseFormatJsonSchema", response_format)
    if graders is not None:
        assert rft["grader"]["type"] in graders, f"{rft['grader']['type']} is not in {graders}"
    rft["grader"] = patch_multi(rft["grader"])
    assert_valid(OPENAI, "FineTuneMethod", method)


# --- OpenAI -------------------------------------------------------------------------------------


async def test_every_openai_create_body_validates_against_the_openapi_spec(spec) -> None:
    server = FakeFineTuningServer(prefix="/v1", file_polls=0)
    with respx.mock(assert_all_mocked=True) as mock:
        mock.route(host="api.openai.com").mock(side_effect=server)
        provider = OpenAIProvider(settings=OpenAISettings(api_key="sk-spec-CANARY-0123456789"))
        bodies = await create_all(provider, server, variants(spec, GRADERS), "openai")
        await provider.aclose()
    assert len(bodies) == len(GRADERS) + 1
    for body in bodies:
        check_openai_method(body["method"])
        body["method"] = {"type": "reinforcement", "reinforcement": {"grader": {}}}
        strict = validator(OPENAI, "CreateFineTuningJobRequest")
        errors = [e for e in strict.iter_errors(body) if list(e.path)[:1] != ["method"]]
        assert not errors, [e.message for e in errors]
    assert bodies[-1]["metadata"] == {"team": "support", "rlft_idempotency_key": "key-5"}


async def test_every_other_openai_request_is_the_spec_shape(spec) -> None:
    """Uploads, listings (their query parameters), grader runs and preflight completions."""
    server = FakeFineTuningServer(prefix="/v1", file_polls=0)
    with respx.mock(assert_all_mocked=True) as mock:
        mock.route(host="api.openai.com", path="/v1/chat/completions").respond(
            json={"choices": [{"message": {"role": "assistant", "content": "ok"}}]}
        )
        mock.route(host="api.openai.com").mock(side_effect=server)
        provider = OpenAIProvider(settings=OpenAISettings(api_key="sk-spec-CANARY-0123456789"))
        await create_all(provider, server, [spec], "openai")
        job_id = next(iter(server.jobs))
        await provider.list_jobs(limit=5)
        await provider.list_events(job_id)
        await provider.list_checkpoints(job_id)
        payload = provider_payload(spec.grader, "openai")
        await provider.validate_grader(payload)
        await provider.run_grader(payload, sample="billing", item={"label": "billing"})
        await provider.generate(model="gpt-4.1-mini", prompts=[[{"role": "user", "content": "hi"}]])
        chat = mock.calls.last.request
        await provider.aclose()
    assert_valid(OPENAI, "CreateChatCompletionRequest", json.loads(chat.content))
    for request in server.requests:
        path = request.url.path.removeprefix("/v1")
        if request.method == "GET" and path == "/fine_tuning/jobs":
            assert sent_query(request) <= query_names(OPENAI, path, "get")
        if request.method == "GET" and path.endswith(("/events", "/checkpoints")):
            template = "/fine_tuning/jobs/{fine_tuning_job_id}/" + path.rsplit("/", 1)[-1]
            assert sent_query(request) <= query_names(OPENAI, template, "get")
        if request.method == "POST" and path == "/files":
            fields = {"purpose": "fine-tune", "file": "<binary>"}
            assert b'name="purpose"\r\n\r\nfine-tune' in request.content
            assert_valid(OPENAI, "CreateFileRequest", fields)
        if path.startswith("/fine_tuning/alpha/graders/"):
            body = json.loads(request.content)
            body["grader"] = patch_multi(body["grader"])
            kind = "RunGraderRequest" if path.endswith("/run") else "ValidateGraderRequest"
            assert_valid(OPENAI, kind, body)
    assert {r.url.path for r in server.requests} >= {
        "/v1/files",
        "/v1/fine_tuning/jobs",
        f"/v1/fine_tuning/jobs/{job_id}/events",
        "/v1/fine_tuning/alpha/graders/run",
        "/v1/fine_tuning/alpha/graders/validate",
    }


def provider_payload(grader, target: str) -> dict[str, Any]:
    from rlft.graders import compile as compile_grader

    payload: dict[str, Any] = compile_grader(grader, target)
    return payload


def test_the_hyperparameter_ranges_are_the_specs() -> None:
    """rlft's range checks accept the spec's bounds and refuse one step beyond, field by field."""
    from rlft._spec import JobSpec
    from rlft.datasets import Dataset
    from rlft.exceptions import HyperparameterError

    schema = OPENAI["components"]["schemas"]["FineTuneReinforcementHyperparameters"]
    rows = [{"messages": [{"role": "user", "content": "q"}], "a": "1"}]
    base = JobSpec(
        model="m",
        train=Dataset.from_records(rows),
        validation=Dataset.from_records(rows),
        grader=GRADERS["string_check"],
    )
    dialect = Dialect(provider="openai")
    checked = 0
    for wire, prop in schema["properties"].items():
        choices = prop.get("oneOf") or prop.get("anyOf") or [prop]
        numeric = [option for option in choices if option.get("type") != "string"]
        if not numeric:
            enum = next(o["enum"] for o in choices if o.get("type") == "string")
            assert set(enum) == set(dialect.reasoning_efforts), wire
            continue
        (bounds,) = numeric
        step = 1 if bounds["type"] == "integer" else 1e-9

        def options(value: Any, name: str = wire) -> Any:
            hp = Hyperparameters(provider_options={name: value})
            return base.model_copy(update={"hyperparameters": hp})

        low, high = bounds.get("minimum"), bounds.get("maximum")
        exclusive_low = bounds.get("exclusiveMinimum") is True
        if low is not None:
            edge = low + step if exclusive_low else low
            check_job_spec(options(edge), dialect)
            with pytest.raises(HyperparameterError, match=wire) as info:
                check_job_spec(options(edge - step if not exclusive_low else low), dialect)
            assert "OpenAI OpenAPI spec 2.3.0" in str(info.value)
        if high is not None:
            check_job_spec(options(high), dialect)
            with pytest.raises(HyperparameterError, match=wire):
                check_job_spec(options(high + step), dialect)
        checked += 1
    assert checked == 6
    seed = OPENAI["components"]["schemas"]["CreateFineTuningJobRequest"]["properties"]["seed"]
    check_job_spec(
        base.model_copy(update={"hyperparameters": Hyperparameters(seed=2**31 - 1)}), dialect
    )
    assert seed["maximum"] == 2**31 - 1 and seed["minimum"] == 0


def test_the_rft_metrics_event_from_openais_guide_normalises() -> None:
    event = to_event(load("openai_rft_metrics_event.json")["event"], job_id="j", provider="openai")
    metrics = event.metrics
    assert event.kind == "metrics" and metrics is not None
    assert (metrics.step, metrics.total_steps) == (10, 20)
    assert metrics.train_reward_mean == 0.42 and metrics.valid_reward_mean == 0.675
    assert metrics.grader_rewards == {"g": 0.44}
    assert metrics.parse_error_rate == 0.0 and metrics.grader_error_rate == 0.0
    assert metrics.completion_length_mean == 3376.0
    assert metrics.step_seconds == 731.5
    assert metrics.tokens["samples/train_reasoning_tokens_mean"] == 3330.0
    assert metrics.tokens["graders/g/train_prompt_tokens_count"] == 120741.0
    assert metrics.tokens["model_graders/gpt-4o-2024-08-06/eval_prompt_tokens"] == 4820
    assert metrics.tokens["valid_reasoning_tokens_mean"] == 1948.9
    assert metrics.extra["graders/g/valid_reward_mean"] == 0.675
    assert metrics.extra["timing/step/sampling"] == 226.8
    assert metrics.extra["timing/graders/g/valid_execution_latency_mean"] == 4.14
    assert metrics.extra["mean_unresponsive_rewards"] == 0.0


# --- the installed openai package ----------------------------------------------------------------


def _refresh_script() -> Any:
    path = ROOT / "scripts" / "refresh_upstream.py"
    spec = importlib.util.spec_from_file_location("refresh_upstream", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["refresh_upstream"] = module
    spec.loader.exec_module(module)
    return module


def test_the_vendored_openai_types_are_the_installed_packages() -> None:
    """An ``openai`` upgrade that changes a fine-tuning type fails here: run
    ``python scripts/refresh_upstream.py``, read the diff, and fix what it breaks."""
    vendored = load("openai_types.json")
    assert _refresh_script().openai_types() == vendored


def test_the_pruned_openai_spec_is_what_the_script_cuts(tmp_path: Path) -> None:
    """The pruning is reproducible: pruning the pruned copy again changes nothing."""
    script = _refresh_script()
    again = script.prune_openai_spec(OPENAI, commit=OPENAI["_provenance"]["commit"])
    again["_provenance"] = OPENAI["_provenance"]
    assert again == OPENAI


# --- Azure ----------------------------------------------------------------------------------------


def azure(server: FakeFineTuningServer, mock: respx.MockRouter, **settings: Any) -> AzureProvider:
    mock.route(host="res.openai.azure.com").mock(side_effect=server)
    merged = {"endpoint": "https://res.openai.azure.com", "api_key": "azure-CANARY-0123456789"}
    return AzureProvider(settings=AzureSettings(**{**merged, **settings}))


async def test_every_azure_classic_create_body_validates_against_the_2025_04_01_preview_spec(
    spec,
) -> None:
    server = FakeFineTuningServer(
        prefix="/openai", flavour="azure", api_version="2025-04-01-preview", file_polls=0
    )
    with respx.mock(assert_all_mocked=True) as mock:
        provider = azure(server, mock, training_type="GlobalStandard")
        bodies = await create_all(provider, server, variants(spec, GRADERS), "azure")
        await provider.aclose()
    assert len(bodies) == len(GRADERS) + 1
    for body in bodies:
        assert body.pop("trainingType") in TRAINING_TYPES  # deviation 3
        check_openai_method(body.pop("method"))  # deviation 4
        assert "metadata" not in body  # FineTuningJobCreation has none
        assert_valid(AZURE_CLASSIC, "FineTuningJobCreation", body)
    for request in server.requests:
        path = request.url.path.removeprefix("/openai")
        if request.method == "GET" and path == "/fine_tuning/jobs":
            assert sent_query(request) <= query_names(AZURE_CLASSIC, path, "get")


async def test_every_azure_v1_create_body_validates_against_the_v1_spec(spec) -> None:
    server = FakeFineTuningServer(prefix="/openai/v1", flavour="azure", file_polls=0)
    v1_graders = ("string_check", "text_similarity", "score_model", "multi")
    with respx.mock(assert_all_mocked=True) as mock:
        provider = azure(server, mock, api="v1", training_type="developertier")
        bodies = await create_all(provider, server, variants(spec, v1_graders), "azure")
        await provider.aclose()
    for body in bodies:
        assert body.pop("trainingType") == "developerTier"  # deviation 3
        # AzureFineTuneReinforcementMethod lists these grader types (no python).
        check_openai_method(body.pop("method"), graders=v1_graders)
        assert_valid(AZURE_V1, "OpenAI.CreateFineTuningJobRequest", body)
        assert body["metadata"]["rlft_idempotency_key"].startswith("key-")
    for request in server.requests:
        path = request.url.path.removeprefix("/openai/v1")
        if request.method == "GET" and path == "/fine_tuning/jobs":
            assert sent_query(request) <= query_names(AZURE_V1, path, "get")


def test_the_arm_api_version_is_a_stable_one_of_the_arm_spec() -> None:
    versions = load("arm_cognitiveservices_stable_versions.json")
    assert ARM_API_VERSION in versions["stable"]
    assert versions["sdk_default"]["api_version"] == ARM_API_VERSION
    assert AzureSettings().arm_api_version == ARM_API_VERSION
    assert "2024-10-21" not in versions["stable"]  # what rlft sent before: not in the spec


async def test_the_azure_spec_checkpoint_example_lists_and_deploys_by_id() -> None:
    example = AZURE_CLASSIC["examples"]["get_finetuning_job_checkpoints"]
    with respx.mock(assert_all_mocked=True) as mock:
        base = "https://res.openai.azure.com/openai/fine_tuning/jobs"
        mock.get(f"{base}/ftjob-72a2792ef7d24ba7b82c7fe4a37e379f/checkpoints").respond(json=example)
        arm = mock.put(url__regex=r"https://management\.azure\.com/.*/deployments/d").respond(
            201, json={}
        )
        provider = AzureProvider(
            settings=AzureSettings(
                endpoint="https://res.openai.azure.com",
                api_key="azure-CANARY-0123456789",
                subscription_id="s",
                resource_group="g",
            ),
            credential=_StaticCredential(),
        )
        (checkpoint,) = await provider.list_checkpoints("ftjob-72a2792ef7d24ba7b82c7fe4a37e379f")
        await provider.deploy_checkpoint(checkpoint, name="d")
        await provider.aclose()
    assert checkpoint.id == "ftckpt_qtZ5Gyk4BLq1SfLFWp3RtO3P" and checkpoint.step == 10
    request = arm.calls.last.request
    body = json.loads(request.content)
    assert body["properties"]["model"]["name"] == "ftckpt_qtZ5Gyk4BLq1SfLFWp3RtO3P"
    assert request.url.params["api-version"] == ARM_API_VERSION
    # The deployment's shape and path are the ARM spec example's (2025-09-01 GetDeployment).
    example = load("arm_2025-09-01_get_deployment.example.json")["responses"]["200"]["body"]
    assert body["sku"].keys() == example["sku"].keys()
    assert body["properties"]["model"].keys() == example["properties"]["model"].keys()
    assert body["properties"]["model"]["format"] == example["properties"]["model"]["format"]
    assert set(body["properties"]) <= set(example["properties"])
    template = [part for part in example["id"].split("/") if part]
    sent = [part for part in request.url.path.split("/") if part]
    assert len(sent) == len(template)
    assert [p for i, p in enumerate(sent) if i % 2 == 0] == template[::2]


class _StaticCredential:
    """An ``azure.identity.aio`` stand-in for the ARM token."""

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from types import SimpleNamespace

        expires = int(datetime.now(UTC).timestamp()) + 3600
        return SimpleNamespace(token="arm-token", expires_on=expires)

    async def close(self) -> None:
        return None
