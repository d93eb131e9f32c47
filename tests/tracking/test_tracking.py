"""Job metrics reach trackio, MLflow and W&B (each offline), read back from their own stores."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner

import rlft
from rlft import JobManager, StepMetrics
from rlft.cli import main
from rlft.exceptions import MissingDependencyError, UsageError
from rlft.graders import StringCheck
from rlft.testing import FakeStep
from rlft.tracking import MlflowTracker, TrackingError, TrackioTracker, WandbTracker, metric_names

from .conftest import read_wandb_history

pytestmark = pytest.mark.anyio

GRADER = StringCheck(
    name="label", input="{{ sample.output_text }}", reference="{{ item.label }}", operation="eq"
)
SCRIPT = [
    FakeStep(train_reward_mean=0.2, tokens={"train_prompt_tokens": 10.0}),
    FakeStep(train_reward_mean=0.5, valid_reward_mean=0.4),
    FakeStep(train_reward_mean=0.8, valid_reward_mean=0.7),
]


def client(tmp_path: Path) -> rlft.Client:
    return rlft.Client(
        provider="fake",
        settings={"script": [step.model_dump() for step in SCRIPT]},
        store=tmp_path / "jobs.db",
    )


def spec() -> rlft.JobSpec:
    rows = [{"messages": [{"role": "user", "content": f"t {i}"}], "label": "a"} for i in range(4)]
    return rlft.JobSpec(train=rlft.Dataset.from_records(rows), grader=GRADER)


async def run_job(tmp_path: Path, trackers: list) -> tuple[rlft.Job, list[rlft.JobUpdate]]:
    async with client(tmp_path) as c:
        manager = JobManager(client=c, trackers=trackers, poll_interval=0.001)
        (job,) = await manager.submit([spec()])
        seen = []
        with anyio.fail_after(60):
            async with manager.watch([job]) as updates:
                async for update in updates:
                    seen.append(update)
        return job, seen


def expected(updates: list[rlft.JobUpdate]) -> dict[int, dict[str, float]]:
    """What the job reported, step -> metric names: what every tracker must hold."""
    steps = {}
    for update in updates:
        if update.kind == "event" and update.event and update.event.metrics:
            metrics = update.event.metrics
            if metric_names(metrics):
                steps[metrics.step or 0] = metric_names(metrics)
    return steps


def test_metric_names_are_the_same_everywhere() -> None:
    metrics = StepMetrics(
        step=3, train_reward_mean=0.5, train_reward_std=0.1, valid_reward_mean=0.4,
        grader_rewards={"label": 0.5}, parse_error_rate=0.0, grader_error_rate=0.25, kl=0.01,
        completion_length_mean=4.0, step_seconds=2.0, tokens={"train_prompt_tokens": 9},
        extra={"lr": 1e-5},
    )  # fmt: skip
    assert metric_names(metrics) == {
        "train/reward_mean": 0.5, "train/reward_std": 0.1, "valid/reward_mean": 0.4,
        "grader/label": 0.5, "errors/parse_error_rate": 0.0, "errors/grader_error_rate": 0.25,
        "train/kl": 0.01, "train/completion_length_mean": 4.0, "perf/step_seconds": 2.0,
        "tokens/train_prompt_tokens": 9.0, "extra/lr": 1e-5,
    }  # fmt: skip
    assert metric_names(StepMetrics(step=1)) == {}


async def test_trackio_logs_locally_without_network(tmp_path: Path, no_internet: list) -> None:
    from trackio.sqlite_storage import SQLiteStorage

    job, updates = await run_job(tmp_path, [TrackioTracker(project="rlft-test")])
    want = expected(updates)
    assert len(want) == 3 and job.status is rlft.JobStatus.SUCCEEDED
    logs = SQLiteStorage.get_logs("rlft-test", job.local_id)
    got = {row["step"]: {k: v for k, v in row.items() if "/" in k} for row in logs}
    assert got == want
    assert no_internet == []


async def test_mlflow_file_store(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = (tmp_path / "mlruns").as_uri()
    job, updates = await run_job(tmp_path, [MlflowTracker(project="rlft-test", tracking_uri=uri)])
    want = expected(updates)
    reader = MlflowClient(tracking_uri=uri)
    experiment = reader.get_experiment_by_name("rlft-test")
    (run,) = reader.search_runs([experiment.experiment_id])
    assert run.info.run_name == job.local_id and run.info.status == "FINISHED"
    for key in ("train/reward_mean", "valid/reward_mean", "tokens/train_prompt_tokens"):
        history = {m.step: m.value for m in reader.get_metric_history(run.info.run_id, key)}
        assert history == {step: v[key] for step, v in want.items() if key in v}, key
    assert run.data.params["provider"] == "fake"


async def test_wandb_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    job, updates = await run_job(tmp_path, [WandbTracker(project="rlft-test", dir=tmp_path)])
    want = expected(updates)
    rows = read_wandb_history(tmp_path)
    got = {row["_step"]: {k: v for k, v in row.items() if "/" in k} for row in rows}
    assert got == want


async def test_every_tracker_at_once_by_name(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "ml").as_uri())
    async with client(tmp_path) as c:
        manager = JobManager(client=c, trackers=["trackio", "wandb", "mlflow"])
        assert [t.name for t in manager._reporter.trackers] == ["trackio", "wandb", "mlflow"]  # type: ignore[union-attr]


class Broken:
    name = "broken"

    def start(self, run, config):
        pass

    def log(self, run, metrics, step):
        raise ConnectionError("tracker server down")

    def finish(self, run, status):
        pass


async def test_a_failing_tracker_leaves_the_job_and_store_alone(tmp_path: Path) -> None:
    job, updates = await run_job(tmp_path, [Broken()])
    errors = [u for u in updates if u.kind == "error"]
    assert len(errors) == 1 and isinstance(errors[0].error, TrackingError)
    assert "tracker broken failed" in str(errors[0].error) and "server down" in str(errors[0].error)
    assert job.status is rlft.JobStatus.SUCCEEDED
    async with client(tmp_path) as c:
        stored = await c.store.events(job.local_id)  # type: ignore[union-attr]
    assert (
        len(expected([rlft.JobUpdate(kind="event", provider="fake", event=e) for e in stored])) == 3
    )


def test_bad_tracker_choices_are_one_clear_line(monkeypatch, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown tracker 'tensorboard'; choose from trackio"):
        JobManager(client=rlft.Client(provider="fake", store=False), trackers=["tensorboard"])
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a)
    )
    with pytest.raises(MissingDependencyError, match=r"needs wandb: pip install 'rlft\[wandb\]'"):
        WandbTracker()


def test_wandb_online_without_login_says_how(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    with pytest.raises(UsageError, match="not logged in: run `wandb login` or set WANDB_API_KEY"):
        WandbTracker()
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    assert WandbTracker().mode == "online"


def project(folder: Path, tracking: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"messages": [{"role": "user", "content": f"t {i}"}], "label": "a"} for i in range(4)]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "job.toml").write_text(
        'train = "train.jsonl"\n[grader]\ntype = "string_check"\nname = "label"\n'
        'input = "{{ sample.output_text }}"\nreference = "{{ item.label }}"\noperation = "eq"\n'
    )
    (folder / "rlft.toml").write_text(
        f'provider = "fake"\n[fake]\nstate_dir = "{folder / "state"}"\nsteps = 3\n{tracking}'
    )
    return folder / "job.toml"


def mlflow_runs(uri: str) -> list:
    from mlflow.tracking import MlflowClient

    reader = MlflowClient(tracking_uri=uri)
    experiment = reader.get_experiment_by_name("from-toml")
    return reader.search_runs([experiment.experiment_id]) if experiment else []


def test_cli_report_to_and_the_tracking_table(tmp_path: Path, monkeypatch) -> None:
    uri = (tmp_path / "ml").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    job_file = project(
        tmp_path / "p", '[tracking]\nreport_to = ["mlflow"]\nproject = "from-toml"\n'
    )
    result = CliRunner().invoke(main, ["run", str(job_file), "--no-preflight", "--json"])
    assert result.exit_code == 0, result.output
    (run,) = mlflow_runs(uri)
    assert run.data.metrics["train/reward_mean"] > 0
    # --report-to beats the file: `none` turns tracking off for this run.
    again = CliRunner().invoke(
        main, ["run", str(job_file), "--no-preflight", "--json", "--again", "--report-to", "none"]
    )
    assert again.exit_code == 0, again.output
    assert len(mlflow_runs(uri)) == 1


def test_cli_bad_tracker_fails_before_the_job(tmp_path: Path) -> None:
    job_file = project(tmp_path / "p")
    result = CliRunner().invoke(main, ["run", str(job_file), "--no-preflight", "--report-to", "x"])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: unknown tracker 'x'; choose from trackio, wandb, mlflow (or none)"
    )
    assert not (tmp_path / "p" / "state").exists()  # nothing was created
    bad = project(tmp_path / "q", "[tracking]\nreport_to = 3\n")
    result = CliRunner().invoke(main, ["run", str(bad), "--no-preflight"])
    assert (
        result.exit_code == 2 and "rlft.toml:5: [tracking] report_to is an integer" in result.output
    )


async def test_a_hosted_job_logs_the_same_names(tmp_path: Path) -> None:
    """The OpenAI backend over HTTP (the loopback fake server): same metric names, same values."""
    from mlflow.tracking import MlflowClient

    from rlft.testing import FakeFineTuningServer, default_conformance_spec

    uri = (tmp_path / "mlruns").as_uri()
    spec = default_conformance_spec().model_copy(update={"model": "o4-mini-2025-04-16"})
    fake = FakeFineTuningServer(job_duration=0.8, total_steps=10, file_polls=0)
    with fake.serve() as server:
        openai = rlft.Client(
            provider="openai",
            autoload=False,
            settings={"base_url": server.url, "api_key": "sk-loopback-test", "max_retries": 0},
            store=tmp_path / "jobs.db",
        )
        async with openai:
            tracker = MlflowTracker(project="hosted", tracking_uri=uri)
            manager = JobManager(client=openai, poll_interval=0.05, trackers=[tracker])
            (job,) = await manager.submit([spec])
            seen = []
            with anyio.fail_after(60):
                async with manager.watch([job]) as updates:
                    async for update in updates:
                        seen.append(update)
    want = expected(seen)
    assert want and "train/reward_mean" in next(iter(want.values()))
    reader = MlflowClient(tracking_uri=uri)
    (run,) = reader.search_runs([reader.get_experiment_by_name("hosted").experiment_id])
    assert run.data.params["provider"] == "openai"
    for key in {key for values in want.values() for key in values}:
        history = {m.step: m.value for m in reader.get_metric_history(run.info.run_id, key)}
        assert history == {step: v[key] for step, v in want.items() if key in v}, key


def test_a_restarted_watcher_continues_the_same_run(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = (tmp_path / "mlruns").as_uri()
    first = MlflowTracker(project="resume", tracking_uri=uri)
    first.start("job-1", {"provider": "fake"})
    first.log("job-1", {"train/reward_mean": 0.2}, 1)
    second = MlflowTracker(project="resume", tracking_uri=uri)  # a new process, after a crash
    second.start("job-1", {"provider": "fake"})
    second.log("job-1", {"train/reward_mean": 0.6}, 2)
    second.finish("job-1", "succeeded")
    reader = MlflowClient(tracking_uri=uri)
    (run,) = reader.search_runs([reader.get_experiment_by_name("resume").experiment_id])
    history = reader.get_metric_history(run.info.run_id, "train/reward_mean")
    assert {m.step: m.value for m in history} == {1: 0.2, 2: 0.6}
    assert run.info.status == "FINISHED"


def test_cli_jobs_watch_reports_a_reattached_job(tmp_path: Path, monkeypatch) -> None:
    uri = (tmp_path / "ml").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    job_file = project(tmp_path / "p", '[tracking]\nproject = "from-toml"\n')
    created = CliRunner().invoke(main, ["run", str(job_file), "--no-preflight", "--detach"])
    assert created.exit_code == 0, created.output
    assert mlflow_runs(uri) == []  # detached: nothing watched, nothing logged yet
    monkeypatch.chdir(tmp_path / "p")  # the rlft.toml with the fake backend's state
    watched = CliRunner().invoke(main, ["jobs", "watch", "--report-to", "mlflow", "--json"])
    assert watched.exit_code == 0, watched.output
    (run,) = mlflow_runs(uri)
    assert run.data.metrics["train/reward_mean"] > 0 and run.info.status == "FINISHED"
