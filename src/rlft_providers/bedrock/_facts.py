"""What the ``bedrock`` backend declares about itself: status words, dataset rules and rendering,
grader format and compiler, and hyperparameter names. Imported when plugins load: no boto3.

Sources resolve in ``/work/shared/reference/bedrock.md`` (tags in brackets).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from rlft.exceptions import UsageError
from rlft.provider import DatasetRules, GraderFacts, HyperparameterFacts, JobStatus
from rlft_providers.bedrock._rules import _NEUTRAL, RFT_FIELDS

if TYPE_CHECKING:
    from rlft.datasets import Dataset
    from rlft.graders import BaseGrader

__all__ = ["DATASET", "GRADERS", "HYPERPARAMETERS", "STATUSES", "compile_grader", "render_dataset"]

# One provider id, two APIs: native Nova RFT jobs (GetModelCustomizationJob) and the open-weight
# OpenAI-compatible endpoint, which answers with OpenAI's words. The two sets do not clash.
STATUSES = {
    "inprogress": JobStatus.RUNNING,
    "completed": JobStatus.SUCCEEDED,
    "failed": JobStatus.FAILED,
    "stopping": JobStatus.RUNNING,  # still billing until Stopped; not a pause
    "stopped": JobStatus.CANCELLED,
    "validating_files": JobStatus.PENDING,
    "queued": JobStatus.PENDING,
    "running": JobStatus.RUNNING,
    "paused": JobStatus.PAUSED,
    "succeeded": JobStatus.SUCCEEDED,
    "cancelled": JobStatus.CANCELLED,
}

DATASET = DatasetRules(
    label="Bedrock RFT",
    # Single-turn prompts: a system turn and one user turn [D7]. AWS's Forge validator also
    # lists developer/assistant/tool/bot roles, but a second speaker makes it multi-turn.
    roles=frozenset({"system", "user"}),
    role_fixes={
        "developer": 'use role "system" for instructions on Bedrock',
        "assistant": "Bedrock RFT is single-turn: keep one user turn (and a system turn)",
        "tool": "Bedrock RFT is single-turn: keep one user turn (and a system turn)",
    },
    part_types=frozenset({"text"}),  # "Text only. Multimodal inputs are not supported" [D7]
    min_rows=100,  # [D2]
    max_rows=20_000,  # "a maximum of 20K prompts" [D1]
    single_turn=True,  # [D7]
    reference_answer=True,  # [D2]
    render="rlft_providers.bedrock._facts:render_dataset",
    sources={"limits": "https://docs.aws.amazon.com/bedrock/latest/userguide/rft-nova-models.html"},
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
