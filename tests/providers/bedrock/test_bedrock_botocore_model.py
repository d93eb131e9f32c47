"""Every Bedrock request against botocore's own service model, vendored under ``upstream/``.

``conftest.every_request_fits_the_botocore_model`` checks each request every Bedrock test sends
(ParamValidator plus the model's patterns, lengths, ranges and enums). These tests pin the
vendored copy to the installed botocore, prove the checker catches each kind of violation, and
show a value the model forbids is refused before anything is uploaded.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import botocore
import pytest

import rlft
from rlft._models import Hyperparameters
from rlft.exceptions import UsageError
from rlft_providers.bedrock import _rules
from rlft_providers.bedrock._provider import BedrockProvider
from rlft_providers.bedrock._shapes import check_request, python_pattern, violations

pytestmark = pytest.mark.anyio

SCRIPT = Path(__file__).parents[3] / "scripts" / "refresh_upstream.py"


def _script() -> Any:
    spec = importlib.util.spec_from_file_location("refresh_upstream", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["refresh_upstream"] = module
    spec.loader.exec_module(module)
    return module


def _body(text: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(text)
    data.pop("_provenance")
    return data


def test_the_vendored_models_are_the_installed_botocore_models() -> None:
    fresh = _script().refresh_bedrock()
    assert {p.name for p in fresh} == {
        f"botocore_{s}.json" for s in ("bedrock", "bedrock-runtime", "lambda", "iam", "s3")
    }
    for path, text in fresh.items():
        vendored = path.read_text()
        # A botocore upgrade that changes a shape rlft sends fails here, not in a paid job:
        # run scripts/refresh_upstream.py and read the diff.
        assert _body(vendored) == _body(text), f"{path.name} drifted from botocore"
        provenance = json.loads(vendored)["_provenance"]
        assert provenance["package"] == "botocore" and provenance["license"].startswith("Apache")
        assert re.fullmatch(r"\d+\.\d+\.\d+", provenance["version"])


def test_every_pattern_rlft_is_checked_against_compiles_in_python(
    botocore_model: SimpleNamespace,
) -> None:
    for path in botocore_model.upstream.glob("botocore_*.json"):
        for name, shape in json.loads(path.read_text())["shapes"].items():
            if "pattern" in shape:
                # raises if _shapes would have to skip it
                assert re.compile(python_pattern(shape["pattern"])), name
    tag = botocore_model.vendored("iam").shape_for("tagKeyType")
    assert list(violations(tag, "team été")) == []  # \p{L} and \p{Z} still accept letters
    assert [v.path for v in violations(tag, "bad!key", "Key")] == ["Key"]


def test_the_neutral_ranges_are_the_models_ranges(botocore_model: SimpleNamespace) -> None:
    shape = botocore_model.vendored("bedrock").shape_for("RFTHyperParameters")
    for api_name, member in shape.members.items():  # type: ignore[attr-defined]
        rule = _rules.RFT_FIELDS[api_name]
        enum = getattr(member, "enum", [])
        if enum:
            assert rule.choices == tuple(enum), api_name
        else:
            assert (rule.low, rule.high) == (
                member.metadata.get("min"),
                member.metadata.get("max"),
            ), api_name
    assert set(_rules.RFT_FIELDS) == set(shape.members)  # type: ignore[attr-defined]


def test_the_checker_catches_each_kind_and_botocore_catches_the_rest(
    botocore_model: SimpleNamespace,
) -> None:
    check_sent = botocore_model.check_sent
    good = {
        "jobName": "triage-0123456789ab",
        "customModelName": "triage-model-0123456789ab",
        "roleArn": "arn:aws:iam::123456789012:role/r",
        "baseModelIdentifier": "amazon.nova-2-lite-v1:0:256k",
        "trainingDataConfig": {"s3Uri": "s3://bucket/train.jsonl"},
        "outputDataConfig": {"s3Uri": "s3://bucket/out/"},
    }
    assert check_sent([("bedrock", "CreateModelCustomizationJob", good)]) == []
    bad = {
        **good,
        "jobName": "bad name!",  # pattern
        "customizationType": "RL",  # enum
        "clientRequestToken": "x" * 300,  # length
        "customizationConfig": {
            "rftConfig": {
                "graderConfig": {"lambdaGrader": {"lambdaArn": "arn:aws:lambda:x"}},
                "hyperParameters": {"batchSize": 8, "epochCount": "2", "warmup": 1},
            }
        },
    }
    del bad["roleArn"]
    problems = "\n".join(check_sent([("bedrock", "CreateModelCustomizationJob", bad)]))
    rft = "customizationConfig.rftConfig"
    for expected in (
        "jobName = 'bad name!': must match the pattern",
        "customizationType = 'RL': one of FINE_TUNING | CONTINUED_PRE_TRAINING",
        "clientRequestToken = 'xxx",
        "1 to 256 characters",
        f"{rft}.hyperParameters.batchSize = 8: 16 to 512 (shape RFTBatchSize)",
        f"{rft}.graderConfig.lambdaGrader.lambdaArn = 'arn:aws:lambda:x': must match",
        f"{rft}.hyperParameters.warmup = <not shown>: not a member",
        "(vendored): roleArn = None: required",
        "(installed): roleArn = None: required",
        # botocore's own ParamValidator: the type it checks and we leave to it.
        "Invalid type for parameter customizationConfig.rftConfig.hyperParameters.epochCount",
    ):
        assert expected in problems, expected
    unknown = check_sent([("bedrock", "DeleteCustomModel", {"modelIdentifier": "m"})])
    assert unknown == [
        "bedrock.DeleteCustomModel: not in the vendored model's operations; add it to "
        "BEDROCK_OPERATIONS in scripts/refresh_upstream.py and run it"
    ]  # the installed model has it, and accepts the request


def test_a_refusal_names_the_field_the_allowed_values_and_the_model(
    botocore_model: SimpleNamespace,
) -> None:
    vendored_model = botocore_model.vendored
    operation = vendored_model("bedrock").operation_model("StopModelCustomizationJob")
    with pytest.raises(UsageError) as caught:
        check_request(operation, {"jobIdentifier": "no spaces allowed"})
    message = str(caught.value)
    assert message.startswith("StopModelCustomizationJob: jobIdentifier = 'no spaces allowed'")
    assert "must match the pattern" in message
    assert f"botocore {botocore.__version__} service model bedrock/2023-04-20" in message
    # Values under a shape the model marks sensitive never appear in a message.
    environment = vendored_model("lambda").shape_for("Environment")
    secret = {"Variables": {"1BAD": "hunter2-secret"}}  # the name breaks the pattern
    (leak,) = violations(environment, secret, "Environment")
    assert "hunter2" not in leak.describe() and "1BAD" not in leak.describe()
    assert leak.describe().startswith("Environment.Variables key = <not shown>: must match")
    blob = list(violations(vendored_model("lambda").shape_for("CreateFunctionRequest"), {}))
    assert {v.path for v in blob} >= {"FunctionName", "Role", "Code"}  # required members


async def test_every_call_of_a_full_job_is_recorded_and_fits(
    provider: BedrockProvider, make_request: Any, botocore_model: SimpleNamespace
) -> None:
    SENT, check_sent = botocore_model.sent, botocore_model.check_sent
    request = make_request(
        key="recorded",
        hyperparameters=Hyperparameters(epochs=2, batch_size=32, reasoning_effort="high"),
        labels={"team": "support"},
    )
    record = await provider.create_job(request)
    await provider.get_job(record.id)
    await provider.list_jobs()
    await provider.cancel_job(record.id)
    sent = {(service, operation) for service, operation, _ in SENT}
    assert {
        ("lambda", "CreateFunction"),
        ("lambda", "PublishVersion"),
        ("iam", "CreateRole"),
        ("iam", "GetRolePolicy"),
        ("bedrock", "CreateModelCustomizationJob"),
        ("bedrock", "GetModelCustomizationJob"),
        ("bedrock", "ListModelCustomizationJobs"),
        ("bedrock", "StopModelCustomizationJob"),
    } <= sent
    (create,) = [p for s, o, p in SENT if o == "CreateModelCustomizationJob"]
    hp = create["customizationConfig"]["rftConfig"]["hyperParameters"]
    assert hp == {"epochCount": 2, "batchSize": 32, "reasoningEffort": "high"}
    assert check_sent(SENT) == []  # the fixture checks this too, after every test


@pytest.mark.parametrize(
    ("settings", "field", "allowed"),
    [
        ({"kms_key_id": "my key"}, "customModelKmsKeyId = 'my key'", "must match the pattern"),
        (
            {"subnet_ids": ("subnet_1",), "security_group_ids": ("sg-1",)},
            "vpcConfig.subnetIds[0] = 'subnet_1'",
            "must match the pattern [-0-9a-zA-Z]+",
        ),
        (
            {"output_s3_uri": "s3://bucket/" + "o" * 1100},
            "outputDataConfig.s3Uri = 's3://bucket/ooo",
            "1 to 1024 characters",
        ),
    ],
)
async def test_a_value_the_model_forbids_is_refused_before_any_upload(
    staged: None,
    bedrock: SimpleNamespace,
    tmp_path: Path,
    settings: dict[str, Any],
    field: str,
    allowed: str,
) -> None:
    rows = [
        {"messages": [{"role": "user", "content": f"{i}+{i}"}], "reference_answer": str(2 * i)}
        for i in range(100)
    ]
    grader = rlft.graders.StringCheck(
        name="sum",
        input="{{ sample.output_text }}",
        reference="{{ item.reference_answer }}",
        operation="eq",
    )
    values = bedrock.make_settings(**settings).model_dump(exclude_defaults=True)
    async with rlft.Client(
        provider="bedrock", settings=values, autoload=False, store=tmp_path / "jobs.db"
    ) as client:
        with pytest.raises(UsageError) as caught:
            await client.jobs.create(train=rlft.Dataset.from_records(rows), grader=grader)
    message = str(caught.value)
    assert "CreateModelCustomizationJob: " in message and field in message and allowed in message
    assert f"botocore {botocore.__version__} service model bedrock/2023-04-20" in message
    assert "\n" not in message
    assert boto3.client("s3").list_objects_v2(Bucket=bedrock.bucket).get("KeyCount") == 0
    assert boto3.client("lambda").list_functions()["Functions"] == []


async def test_every_call_is_checked_at_run_time_not_only_the_create(
    bedrock: SimpleNamespace, botocore_model: SimpleNamespace
) -> None:
    provider = BedrockProvider(settings=bedrock.make_settings(), session=boto3.Session())
    with pytest.raises(UsageError, match=r"GetModelCustomizationJob: jobIdentifier = 'my job'"):
        await provider.get_job("my job")
    assert botocore_model.sent == []  # refused before botocore saw it: nothing was sent
