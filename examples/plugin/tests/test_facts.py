"""Acme's own facts reach rlft through the ProviderSpec alone: no edit to rlft.

Each test shows one fact in use: the status words when a job is read, the dataset rule in
``rlft validate --provider acme``, the rates in ``BudgetGuard``'s estimate.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import rlft
from click.testing import CliRunner
from rlft.cli import main
from rlft.guards import BudgetGuard
from rlft.provider import (
    CreateJobRequest,
    JobEvent,
    JobRecord,
    JobStatus,
    StepMetrics,
    map_status,
)
from rlft.testing import FakeFineTuningServer, default_conformance_spec

from rlft_acme import _plugin
from rlft_acme._provider import AcmeProvider

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def _registered(tmp_path: Path) -> None:
    """Load the plugin the way rlft does (installed, it is also found through its entry point)."""
    rlft.Client(plugins=[_plugin], cwd=tmp_path, store=False).provider_specs()


# --8<-- [start:statuses-test]
def test_acme_status_words_map_to_neutral_statuses() -> None:
    assert map_status("acme", "warming_up") is JobStatus.PENDING  # not an OpenAI word
    assert map_status("acme", "Evaluating") is JobStatus.RUNNING
    assert map_status("acme", "succeeded") is JobStatus.SUCCEEDED


async def test_a_job_in_an_acme_only_status_reads_as_pending(
    acme_provider: AcmeProvider, acme_server: FakeFineTuningServer
) -> None:
    record = await acme_provider.create_job(await _request(acme_provider))
    acme_server.jobs[record.id].body["status"] = "warming_up"  # the service says so
    fetched = await acme_provider.get_job(record.id)
    assert (fetched.status, fetched.provider_status) == (JobStatus.PENDING, "warming_up")


# --8<-- [end:statuses-test]


async def _request(provider: AcmeProvider) -> CreateJobRequest:
    spec = default_conformance_spec()
    return CreateJobRequest(
        spec=spec,
        grader_payload=rlft.graders.compile(spec.grader, "acme"),
        training_file=await provider.upload_dataset(spec.train, role="train"),
        validation_file=None,
        idempotency_key="facts-test",
    )


# --8<-- [start:validate-test]
def test_rlft_validate_applies_acmes_dataset_rule(tmp_path: Path) -> None:
    row = {
        "messages": [
            {"role": "user", "content": "Where is my parcel?"},
            {"role": "assistant", "content": "Let me check."},
            {"role": "user", "content": "Thanks"},
        ],
        "label": "shipping",
    }
    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps(row) + "\n")
    generic = CliRunner().invoke(main, ["validate", str(data)])
    assert generic.exit_code == 0, generic.output  # fine as a chat dataset
    acme = CliRunner().invoke(
        main, ["validate", str(data), "--provider", "acme", "--format", "json"]
    )
    assert acme.exit_code == 1, acme.output
    problems = json.loads(acme.output)["problems"]
    assert {(p["code"], p["line"]) for p in problems} >= {
        ("role-not-supported", 1),  # Acme accepts system and user only
        ("multi-turn", 1),  # and one user turn
    }
    assert any("Acme RFT" in p["message"] for p in problems)


# --8<-- [end:validate-test]


# --8<-- [start:rates-test]
def test_the_budget_guard_estimates_with_acmes_rates(acme_provider: AcmeProvider) -> None:
    job = rlft.Job(
        provider=acme_provider,
        record=JobRecord(
            id="ftjob-1",
            provider="acme",
            status=JobStatus.RUNNING,
            provider_status="running",
            model="acme-large-2",
        ),
    )
    guard = BudgetGuard(limit=100.0)  # no rates given: Acme's declared ones are used
    guard.start(job)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for hour in range(3):
        metrics = StepMetrics(step=hour + 1, step_seconds=3600.0)
        event = JobEvent(
            id=f"e{hour}",
            job_id=job.id,
            kind="metrics",
            metrics=metrics,
            at=start + timedelta(hours=hour),
        )
        trip = guard.observe(job, event)
    assert guard.spend(job) == pytest.approx(3 * 48.0)  # acme-large: $48 an hour
    assert trip is not None and "$144.00" in trip.reason


# --8<-- [end:rates-test]
