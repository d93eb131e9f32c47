"""Data takes one way: one check per create, a lazily compiled grader, no private reach-through."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from jobs_helpers import GRADER, make_client, spec

import rlft
import rlft.graders
from rlft._manager import JobManager
from rlft._spec import CheckedSpec, CreateJobRequest
from rlft._store import scope_of
from rlft.exceptions import GraderNotSupportedError, UsageError
from rlft.graders import TextSimilarity
from rlft.testing import FakeProvider

pytestmark = pytest.mark.anyio

SRC = Path(rlft.__file__).parent


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts dataset validations, provider spec checks and grader compiles."""
    seen = {"validate": 0, "check_spec": 0, "compile": 0}
    validate, check_spec, compile_ = (
        rlft.Dataset.validate,
        FakeProvider.check_spec,
        rlft.graders.compile,
    )

    def counting_validate(self: rlft.Dataset, *args: Any, **kwargs: Any) -> Any:
        seen["validate"] += 1
        return validate(self, *args, **kwargs)

    def counting_check(self: FakeProvider, job_spec: Any) -> None:
        seen["check_spec"] += 1
        check_spec(self, job_spec)

    def counting_compile(*args: Any, **kwargs: Any) -> Any:
        seen["compile"] += 1
        return compile_(*args, **kwargs)

    monkeypatch.setattr(rlft.Dataset, "validate", counting_validate)
    monkeypatch.setattr(FakeProvider, "check_spec", counting_check)
    monkeypatch.setattr(rlft.graders, "compile", counting_compile)
    return seen


async def test_a_submitted_spec_is_checked_and_validated_once(
    tmp_path: Path, counts: dict[str, int]
) -> None:
    async with make_client(tmp_path / "jobs.db") as client:
        await JobManager(client=client).submit([spec("a"), spec("b", epochs=2)])
        assert counts["validate"] == 2 and counts["check_spec"] == 2  # one each per spec


async def test_a_checked_spec_carries_the_fact_to_create(
    tmp_path: Path, counts: dict[str, int]
) -> None:
    async with make_client(tmp_path / "jobs.db") as client:
        checked = client.jobs.check(spec("a"))
        assert isinstance(checked, CheckedSpec) and checked.provider == "fake"
        assert checked.scope == scope_of(client.provider)
        await client.jobs.create(spec=checked)
        await JobManager(client=client).submit([checked])  # the same job, found again
        assert counts["validate"] == 1 and counts["check_spec"] == 1
        # Checked for another endpoint: checked again for this one.
        await client.jobs.create(spec=checked, provider="fake2")
        assert counts["validate"] == 2 and counts["check_spec"] == 2


async def test_a_create_without_a_payload_reader_never_compiles(
    tmp_path: Path, counts: dict[str, int]
) -> None:
    # The fake grades nothing remotely, like the local runner (which compiles in its worker):
    # it never reads request.grader_payload, so nothing is compiled for it.
    async with make_client(tmp_path / "jobs.db") as client:
        await client.jobs.create(spec=spec("a"))
        await JobManager(client=client).submit([spec("b", epochs=2)])
    assert counts["compile"] == 0


async def test_the_grader_is_compiled_once_by_the_backend_that_reads_it(
    tmp_path: Path, counts: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    payloads: list[Any] = []
    create_job = FakeProvider.create_job

    async def reading(self: FakeProvider, request: CreateJobRequest) -> Any:
        assert not request.grader_compiled
        payloads.extend([request.grader_payload, request.grader_payload])
        return await create_job(self, request)

    monkeypatch.setattr(FakeProvider, "create_job", reading)
    async with make_client(tmp_path / "jobs.db") as client:
        await client.jobs.create(spec=spec("a"))
    assert counts["compile"] == 1
    assert payloads[0] is payloads[1] and payloads[0] == GRADER  # the "local" target: itself


async def test_an_unsupported_grader_is_refused_before_any_upload_without_compiling(
    tmp_path: Path, counts: dict[str, int]
) -> None:
    cosine = TextSimilarity(
        name="why", input="{{ sample.output_text }}", reference="{{ item.label }}",
        evaluation_metric="cosine",
    )  # fmt: skip
    async with make_client(tmp_path / "jobs.db") as client:
        with pytest.raises(GraderNotSupportedError, match="cosine"):
            await client.jobs.create(spec=spec("a").model_copy(update={"grader": cosine}))
        provider = client.provider
        assert isinstance(provider, FakeProvider) and provider.uploads == []
    assert counts["compile"] == 0


def test_create_job_request_keeps_its_public_shape() -> None:
    job_spec = spec("a")
    eager = CreateJobRequest(
        spec=job_spec, grader_payload={"type": "x"}, training_file="f", validation_file=None,
        idempotency_key="k",
    )  # fmt: skip
    assert eager.grader_payload == {"type": "x"} and eager.grader_compiled
    calls: list[int] = []
    lazy = CreateJobRequest(
        spec=job_spec, training_file="f", idempotency_key="k",
        compile_grader=lambda: calls.append(1) or {"compiled": True},
    )  # fmt: skip
    assert "compiled" not in repr(lazy) and calls == []  # a repr compiles nothing
    copy = dataclasses.replace(lazy, training_file="g")  # providers do this (Bedrock)
    assert copy.grader_payload == {"compiled": True} and lazy.grader_payload is copy.grader_payload
    assert calls == [1]
    with pytest.raises(dataclasses.FrozenInstanceError):
        lazy.grader_payload = {}  # type: ignore[misc]
    with pytest.raises(UsageError, match="no grader payload"):
        _ = CreateJobRequest(spec=job_spec, training_file="f", idempotency_key="k").grader_payload


# --- no private reach-through -------------------------------------------------------------------


def _private_reaches(path: Path) -> list[str]:
    """``x._name`` where ``x`` is not ``self``/``cls``: a reach into another object's insides."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Attribute):
            continue
        name = node.attr
        if not name.startswith("_") or name.startswith("__"):
            continue
        if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            continue
        found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    return found


@pytest.mark.parametrize("module", ["_manager.py", "guards.py"])
def test_manager_and_guards_use_only_public_job_methods(module: str) -> None:
    assert _private_reaches(SRC / module) == []


def test_the_reach_through_check_catches_a_reach(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "def f(self, job, client):\n"
        "    self._ok = job._provider.capabilities\n"
        "    return client._scope(job), job._local_id\n"
    )
    assert sorted(hit.split(": ")[1] for hit in _private_reaches(bad)) == [
        "client._scope",
        "job._local_id",
        "job._provider",
    ]


def test_the_scope_is_a_function_of_the_store() -> None:
    assert not hasattr(rlft.Client, "_scope")
    for module in ("_client.py", "_manager.py"):
        assert "client._scope" not in (SRC / module).read_text(encoding="utf-8")


async def test_jobs_expose_capabilities_and_attach_to_a_store(tmp_path: Path) -> None:
    async with make_client(False) as unrecorded:
        job = await unrecorded.jobs.create(spec=spec("a"))
        assert job.capabilities is FakeProvider.capabilities and job.backend is unrecorded.provider
        assert job.local_id is None and job.store is None
        async with make_client(tmp_path / "jobs.db") as client:
            store = client.store
            assert store is not None
            (row,) = await store.adopt_many([job.record], scope=scope_of(job.backend))
            job.attach_to(store, row.local_id)
            await job.refresh()
            saved = await store.get(row.local_id)
            assert saved is not None and saved.status == job.status.value
            with pytest.raises(UsageError, match="already recorded"):
                job.attach_to(store, "rlft-000000000000")
