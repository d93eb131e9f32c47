"""What the ``bedrock`` backend declares about itself: status words, dataset rules and rendering,
grader format and compiler, and hyperparameter names. Imported when plugins load: no boto3.

Sources resolve in ``/work/shared/reference/bedrock.md`` (tags in brackets).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from rlft.exceptions import UsageError
from rlft.provider import DatasetRules, GraderFacts, HyperparameterFacts, JobStatus
from rlft_providers.bedrock._rules import _NEUTRAL, RFT_FIELDS

if TYPE_CHECKING:
    from rlft.datasets import Dataset
    from rlft.graders import BaseGrader

__all__ = [
    "DATASET",
    "GRADERS",
    "HYPERPARAMETERS",
    "OPEN_WEIGHT_STATUSES",
    "STATUSES",
    "compile_grader",
    "render_dataset",
]

# Native Nova RFT jobs (GetModelCustomizationJob).
STATUSES = {
    "inprogress": JobStatus.RUNNING,
    "completed": JobStatus.SUCCEEDED,
    "failed": JobStatus.FAILED,
    "stopping": JobStatus.RUNNING,  # still billing until Stopped; not a pause
    "stopped": JobStatus.CANCELLED,
}

# Provider bedrock-open-weight: the OpenAI-compatible endpoint answers with OpenAI's words.
OPEN_WEIGHT_STATUSES = {
    "validating_files": JobStatus.PENDING,
    "queued": JobStatus.PENDING,
    "running": JobStatus.RUNNING,
    "paused": JobStatus.PAUSED,
    "succeeded": JobStatus.SUCCEEDED,
    "failed": JobStatus.FAILED,
    "cancelled": JobStatus.CANCELLED,
}

DATASET = DatasetRules(
    label="Bedrock RFT",
    # System, user and assistant roles [D2]; single-turn [D7]: the model answers once, so
    # assistant turns are few-shot examples inside the prompt, alternating with user turns.
    roles=frozenset({"system", "user", "assistant"}),
    role_fixes={
        "developer": 'use role "system" for instructions on Bedrock',
        "tool": "Bedrock RFT is single-turn without tools: keep system, user and assistant "
        "(few-shot) turns",
    },
    part_types=frozenset({"text"}),  # "Text only. Multimodal inputs are not supported" [D7]
    min_rows=100,  # [D2]
    max_rows=20_000,  # "a maximum of 20K prompts" [D1]
    single_turn=True,  # [D7]
    few_shot=True,  # the RFT data guide allows system, user and assistant roles
    reference_answer=True,  # [D2]
    render="rlft_providers.bedrock._facts:render_dataset",
    sources={
        "limits": "https://docs.aws.amazon.com/bedrock/latest/userguide/rft-nova-models.html",
        # [D7]: image rows are refused before upload, naming the backends that take them.
        "images": '"Text only. Multimodal inputs are not supported for RFT": '
        "https://docs.aws.amazon.com/bedrock/latest/userguide/nova-rft.html",
    },
)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def render_dataset(dataset: Dataset) -> bytes:
    """Bedrock's upload: ``{"messages", "tools"?, "reference_answer", **item}`` per line.

    Bedrock requires a non-empty ``reference_answer`` in every record; a row without one gets
    its item fields (an object) as ``reference_answer``. The item fields also stay top-level,
    where Bedrock passes extra fields on to the grader Lambda.
    """
    lines = []
    for example in dataset:
        item = dict(example.item)
        answer = item.pop("reference_answer", None)
        record: dict[str, Any] = {"messages": example.messages}
        if example.tools is not None:
            record["tools"] = example.tools
        record["reference_answer"] = dict(item) if answer is None else answer
        record.update(item)
        lines.append(_dumps(record) + b"\n")
    return b"".join(lines)


# Lambda's function ARN pattern (botocore's lambda model, FunctionArn).
_LAMBDA_ARN = re.compile(
    r"arn:(aws[a-zA-Z-]*)?:lambda:[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:\d{12}:"
    r"function:[a-zA-Z0-9-_.]+(:(\$LATEST|[a-zA-Z0-9-_]+))?"
)


def compile_grader(grader: BaseGrader, **options: Any) -> Any:
    """A ``Native`` grader's own payload (``{"lambda_arn": ...}``), else a Lambda package that
    runs the grader on rlft's engine (``rlft.graders.compile`` checked support first)."""
    from rlft.graders import Native
    from rlft.graders.formats.lambda_ import build_lambda_package

    if isinstance(grader, Native):
        if options:
            raise UsageError(
                f"compile(grader, 'bedrock') takes no options for a Native grader; got "
                f"{', '.join(sorted(options))}"
            )
        arn = grader.payload.get("lambda_arn")
        if not isinstance(arn, str) or not _LAMBDA_ARN.fullmatch(arn):
            raise UsageError(
                f"grader {grader.name!r}: a bedrock native grader needs payload "
                "{'lambda_arn': 'arn:aws:lambda:<region>:<account>:function:<name>'}"
            )
        return dict(grader.payload)
    return build_lambda_package(grader, **options)


GRADERS = GraderFacts(
    format="lambda",
    compiler="rlft_providers.bedrock._facts:compile_grader",
    native=True,
    notes={"score_model": "judge via Bedrock Converse or an OpenAI-compatible endpoint"},
)

# Nova RFT's RFTHyperParameters, mapped and range-checked by _rules.rft_hyperparameters.
HYPERPARAMETERS = HyperparameterFacts(
    names=dict(_NEUTRAL),
    ranges={neutral: RFT_FIELDS[api].describe() for neutral, api in _NEUTRAL.items()},
    check="rlft_providers.bedrock._rules:rft_hyperparameters",
    source="botocore 1.44.8 bedrock/2023-04-20 RFTHyperParameters",
)
