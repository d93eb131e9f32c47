"""What users of ``provider = "acme"`` see, through ``rlft.Client`` like any built-in backend."""

from __future__ import annotations

from pathlib import Path

import pytest
import rlft
from rlft.exceptions import CapabilityError, ConfigurationError, UsageError
from rlft.testing import FakeFineTuningServer, default_conformance_spec

from rlft_acme import _plugin
from rlft_acme._provider import AcmeProvider

pytestmark = pytest.mark.anyio


def acme_client(tmp_path: Path, **kwargs: object) -> rlft.Client:
    """A client that knows only this plugin (found without entry points) and keeps no store."""
    return rlft.Client(plugins=[_plugin], autoload=False, cwd=tmp_path, store=False, **kwargs)


# --8<-- [start:client-test]
async def test_a_whole_job_through_rlft(
    acme_network: FakeFineTuningServer,
    api_key: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "rlft.toml").write_text(
        'provider = "acme"\n[acme]\nbase_url = "https://ft.acme.example/v1"\n'
    )
    monkeypatch.setenv("ACME_API_KEY", api_key)
    async with acme_client(tmp_path, settings={"file_poll_interval": 0.01}) as client:
        job = await client.jobs.create(spec=default_conformance_spec())
        assert job.provider == "acme" and job.status is rlft.JobStatus.PENDING
        acme_network.advance(job.id, 6)  # queued, running, four steps, succeeded
        steps = [e.metrics.step async for e in job.events(follow=False) if e.metrics]
        assert steps == [1, 2, 3, 4]
        await job.wait(poll_interval=0.01)
        assert job.status is rlft.JobStatus.SUCCEEDED
        assert [c.step for c in await job.checkpoints()] == [2, 4]
        (results,) = await job.download_results(tmp_path / "results")
        assert results.name == "step_metrics.csv" and results.read_text()
        with pytest.raises(CapabilityError, match="does not support pause"):
            await job.pause()


# --8<-- [end:client-test]


async def test_the_create_body_is_openai_shaped(
    acme_network: FakeFineTuningServer, api_key: str, tmp_path: Path
) -> None:
    base_url = "https://ft.acme.example/v1"
    settings = {"base_url": base_url, "api_key": api_key, "file_poll_interval": 0.01}
    async with acme_client(tmp_path, provider="acme", settings=settings) as client:
        await client.jobs.create(spec=default_conformance_spec())
    create = next(r for r in acme_network.requests if r.url.path == "/v1/fine_tuning/jobs")
    assert create.headers["authorization"] == f"Bearer {api_key}"
    body = acme_network.jobs[next(iter(acme_network.jobs))].body
    assert body["method"]["type"] == "reinforcement"
    assert body["method"]["reinforcement"]["grader"]["type"] == "string_check"
    assert body["metadata"]["rlft_idempotency_key"]  # a retried create finds this job


def test_a_missing_key_names_the_variable(tmp_path: Path) -> None:
    client = acme_client(tmp_path, provider="acme", settings={"base_url": "https://x.example"})
    with pytest.raises(ConfigurationError, match="ACME_API_KEY"):
        client.provider  # noqa: B018 - building the provider is the point


def test_a_key_in_rlft_toml_is_refused(tmp_path: Path) -> None:
    (tmp_path / "rlft.toml").write_text('[acme]\nbase_url = "https://x.example"\napi_key = "k"\n')
    client = acme_client(tmp_path, provider="acme")
    with pytest.raises(ConfigurationError, match="set the environment variable ACME_API_KEY"):
        client.provider  # noqa: B018


def test_a_bad_base_url_names_the_field(tmp_path: Path, api_key: str) -> None:
    settings = {"base_url": "ft.acme.example/v1", "api_key": api_key}
    client = acme_client(tmp_path, provider="acme", settings=settings)
    with pytest.raises(ConfigurationError, match=r"base_url \(from argument\).*https://"):
        client.provider  # noqa: B018


def test_a_long_job_name_is_refused_before_any_upload(acme_provider: AcmeProvider) -> None:
    spec = default_conformance_spec().model_copy(update={"name": "x" * 41})
    with pytest.raises(UsageError, match="1 to 40 characters"):
        acme_provider.check_spec(spec)


def test_the_installed_entry_point_is_found(tmp_path: Path) -> None:
    """Needs the package installed (``pip install -e .``): rlft finds it like a built-in."""
    plugins = rlft.Client(autoload=True, cwd=tmp_path, store=False).plugins()
    found = [(p.name, p.distribution, p.providers) for p in plugins]
    assert ("acme", "rlft-acme", ["acme"]) in found
