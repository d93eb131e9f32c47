"""The local provider without training: registration, checks, uploads, lookups, quick stops."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from tests.local.conftest import create, make_provider, quickstart_spec, wait_until

from rlft._models import Hyperparameters, JobStatus
from rlft._spec import CreateJobRequest, JobSpec
from rlft.datasets import to_trl_rows
from rlft.exceptions import HyperparameterError, NotFoundError, UsageError
from rlft.provider import ProviderRegistry
from rlft.testing import ProviderConformance, default_conformance_spec
from rlft.workers.jobdir import JobDir
from rlft.workers.lock import is_alive
from rlft_providers.local import _plugin
from rlft_providers.local._provider import LocalProvider
from rlft_providers.local._settings import LocalSettings

pytestmark = pytest.mark.anyio

HEAVY = ("torch", "transformers", "trl", "datasets", "matplotlib", "accelerate", "peft")


def test_plugin_registers_the_local_provider() -> None:
    registry = ProviderRegistry()
    _plugin.rlft_register_providers(registry)
    spec = registry.get("local")
    assert spec is not None
    assert spec.settings is LocalSettings and spec.extra == "local"
    assert set(spec.requires) == {"torch", "transformers", "trl"}
    assert spec.load() is LocalProvider


def test_provider_module_imports_nothing_heavy() -> None:
    code = (
        "import sys, rlft_providers.local._plugin, rlft_providers.local._provider;"
        "print(' '.join(sorted(m for m in sys.modules)))"
    )
    loaded = set(subprocess.check_output([sys.executable, "-c", code], text=True).split())
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_settings_default_home_is_under_rlft_home(tmp_path: Path) -> None:
    # the root conftest points RLFT_HOME at a temporary folder
    assert LocalSettings().resolved_home() == Path(os.environ["RLFT_HOME"]) / "local"
    assert LocalSettings(home=tmp_path).resolved_home() == tmp_path


def test_check_spec_refuses_bad_models_and_settings(tmp_path: Path) -> None:
    provider = make_provider(tmp_path)
    spec = quickstart_spec()
    provider.check_spec(spec)  # the tiny model needs nothing on disk
    with pytest.raises(UsageError, match="does not exist"):
        provider.check_spec(spec.model_copy(update={"model": "./no/such/model"}))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no config.json"):
        provider.check_spec(spec.model_copy(update={"model": str(tmp_path / "empty")}))
    with pytest.raises(UsageError, match="hf download acme/never-downloaded"):
        provider.check_spec(spec.model_copy(update={"model": "acme/never-downloaded"}))
    bad = spec.model_copy(update={"hyperparameters": Hyperparameters(samples_per_prompt=1)})
    with pytest.raises(HyperparameterError, match="samples_per_prompt"):
        provider.check_spec(bad)


def read_jsonl(path: Path) -> list[object]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def mtime(path: Path) -> int:
    return path.stat().st_mtime_ns


async def test_upload_writes_trl_rows_once_by_content(tmp_path: Path) -> None:
    provider = make_provider(tmp_path)
    spec = quickstart_spec()
    path = Path(await provider.upload_dataset(spec.train, role="train"))
    assert path.parent == tmp_path / "datasets" and spec.train.content_hash in path.name
    assert read_jsonl(path) == json.loads(json.dumps(to_trl_rows(spec.train)))
    before = mtime(path)
    assert Path(await provider.upload_dataset(spec.train, role="validation")) == path
    assert mtime(path) == before  # the same content is not written twice


async def test_unknown_jobs_and_cursors(tmp_path: Path) -> None:
    provider = make_provider(tmp_path)
    for job_id in ("local-nope", "../etc", ""):
        with pytest.raises(NotFoundError, match="no local job"):
            await provider.get_job(job_id)
    with pytest.raises(UsageError, match="not an event id"):
        await provider.list_events("local-nope", after="evt_12")
    assert await provider.list_jobs() == []


async def test_create_is_idempotent_and_cancel_before_training_is_instant(
    tmp_path: Path,
) -> None:
    provider = make_provider(tmp_path)
    spec = quickstart_spec()
    first = await create(provider, spec, key="same")
    second = await create(provider, spec, key="same")
    assert second.id == first.id
    assert len(await provider.list_jobs()) == 1
    folder = JobDir(tmp_path / "jobs" / first.id)
    assert json.loads(folder.job_file.read_text())["idempotency_key"] == "same"

    cancelled = await provider.cancel_job(first.id)
    assert cancelled.status is JobStatus.CANCELLED and cancelled.finished_at is not None
    assert not is_alive(folder)  # the launcher and the worker are gone
    events = await provider.list_events(first.id)
    assert [e.raw["status"] for e in events if e.kind == "status" and e.raw] == [
        "pending",
        "cancelled",
    ]
    assert (await provider.cancel_job(first.id)).status is JobStatus.CANCELLED  # idempotent
    with pytest.raises(UsageError, match="only a paused job, or one whose worker died, can resume"):
        await provider.resume_job(first.id)
    with pytest.raises(UsageError, match="only a pending or running job can pause"):
        await provider.pause_job(first.id)


class _Spy:
    """A request that records which of its attributes were read."""

    def __init__(self, request: CreateJobRequest) -> None:
        self._request = request
        self.read: set[str] = set()

    def __getattr__(self, name: str) -> object:
        self.read.add(name)
        return getattr(self._request, name)


async def test_create_never_reads_the_compiled_grader(tmp_path: Path) -> None:
    # The worker compiles the grader from the spec: a payload compiled for it would be wasted.
    provider = make_provider(tmp_path)
    spec = quickstart_spec()
    request = CreateJobRequest(
        spec=spec,
        grader_payload=None,
        training_file=await provider.upload_dataset(spec.train, role="train"),
        validation_file=None,
        idempotency_key="spy",
    )
    spy = _Spy(request)
    record = await provider.create_job(spy)  # type: ignore[arg-type]
    await provider.cancel_job(record.id)
    assert {"spec", "training_file", "idempotency_key"} <= spy.read
    assert "grader_payload" not in spy.read
    job = JobDir(tmp_path / "jobs" / record.id).read_job()
    assert job.grader == spec.grader.model_dump(mode="json")  # the neutral grader, as given


async def test_a_key_left_by_a_creator_that_died_does_not_block_creates(tmp_path: Path) -> None:
    provider = make_provider(tmp_path)
    first = await create(provider, quickstart_spec(), key="k")
    await provider.cancel_job(first.id)
    key_file = next((tmp_path / "keys").iterdir())
    key_file.write_text("local-never-created")  # a creator that died before writing its job
    os.utime(key_file, (1, 1))
    second = await create(provider, quickstart_spec(), key="k")
    assert second.id not in (first.id, "local-never-created")
    assert key_file.read_text() == second.id
    await provider.cancel_job(second.id)


async def test_a_job_whose_processes_vanished_is_failed_with_the_reason(tmp_path: Path) -> None:
    provider = make_provider(tmp_path)
    record = await create(provider, quickstart_spec())
    folder = JobDir(tmp_path / "jobs" / record.id)
    await wait_until(provider, record.id, lambda r, e: folder.read_state().pid is not None)
    os.killpg(folder.read_state().pid or 0, signal.SIGKILL)  # launcher and worker at once
    failed, events = await wait_until(provider, record.id, lambda r, e: r.status.is_terminal)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error.code == "worker_lost"
    assert "without recording how the job ended" in failed.error.message
    assert "both were killed: the machine did not restart" in failed.error.message
    assert f"rlft jobs resume {record.id}" in failed.error.message
    assert events[-1].kind == "status" and events[-1].level == "error"


class TestLocalConformance(ProviderConformance):
    @pytest.fixture
    def provider(self, tmp_path: Path) -> Iterator[LocalProvider]:
        provider = make_provider(tmp_path / "home")
        yield provider

        async def stop_all() -> None:  # stop the workers the suite started
            for record in await provider.list_jobs():
                await provider.cancel_job(record.id)

        anyio.run(stop_all)

    @pytest.fixture
    def conformance_spec(self) -> JobSpec:
        spec = default_conformance_spec()  # names a hosted model: use the tiny one here
        return spec.model_copy(
            update={"model": None, "hyperparameters": Hyperparameters(max_steps=1000)}
        )
