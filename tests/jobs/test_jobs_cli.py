"""``rlft run``, ``rlft preflight`` and ``rlft jobs ...`` through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import click
import pytest
from click.testing import CliRunner, Result

from rlft._store import JobStore
from rlft.cli import _Group
from rlft.cli._jobs import jobs, preflight, run
from rlft.exceptions import BadRequestError, ProviderConnectionError, UsageError
from rlft.testing import FakeProvider


@click.group(cls=_Group)
def cli() -> None:
    """The commands as the lead registers them in `rlft.cli.main`."""


for _command in (run, preflight, jobs):
    cli.add_command(_command)

LABELS = ["billing", "bug", "account", "shipping"]


def project(folder: Path, *, fake: str = "steps = 4", job: str = "") -> Path:
    """A job folder: train.jsonl, job.toml and an rlft.toml choosing the fake backend."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps(
            {"messages": [{"role": "user", "content": f"ticket {i}"}], "label": LABELS[i % 4]}
        )
        for i in range(12)
    ]
    (folder / "train.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "job.toml").write_text(
        'name = "triage"\ntrain = "train.jsonl"\n'
        + job
        + '\n[grader]\ntype = "string_check"\nname = "label"\n'
        'input = "{{ sample.output_text }}"\nreference = "{{ item.label }}"\noperation = "eq"\n'
        '\n[labels]\nteam = "support"\n'
    )
    (folder / "rlft.toml").write_text(
        f'provider = "fake"\n[fake]\nstate_dir = "{folder / "state"}"\n{fake}\n'
    )
    return folder / "job.toml"


def invoke(*args: str | Path) -> Result:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def json_lines(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.output.splitlines() if line.strip()]


def stored() -> list[Any]:
    return anyio.run(JobStore().jobs)


@pytest.fixture(autouse=True)
def _elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")  # the jobs commands must not need the job's folder


def test_run_validates_preflights_creates_watches_and_plots(tmp_path: Path) -> None:
    result = invoke("run", project(tmp_path / "p"), "--max-gap", "0.3")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "valid for fake (12 training rows)" in out
    assert "preflight on fake" in out and "mean reward 0.250" in out
    assert "created job rlft-" in out and "succeeded" in out
    (row,) = stored()
    assert row.status == "succeeded" and row.labels == {"team": "support"}
    png = JobStore().path.parent / "jobs" / row.local_id / "reward_curve.png"
    assert f"reward curve {png}" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_json_prints_one_object_per_line(tmp_path: Path) -> None:
    result = invoke("run", project(tmp_path / "p"), "--json")
    assert result.exit_code == 0, result.output
    lines = json_lines(result)
    kinds = [line["kind"] for line in lines]
    assert kinds[0] == "preflight" and kinds[-1] == "summary"
    assert {"status", "event"} <= set(kinds)
    summary = lines[-1]
    assert summary["status"] == "succeeded" and summary["steps"] == 4
    assert summary["train_reward_mean"] == pytest.approx(0.9)
    assert Path(summary["reward_curve"]).is_file()
    steps = [
        line["event"]["metrics"]["step"]
        for line in lines
        if line["kind"] == "event" and line["event"]["metrics"]
    ]
    assert steps == [1, 2, 3, 4]


def test_run_without_preflight(tmp_path: Path) -> None:
    result = invoke("run", project(tmp_path / "p"), "--no-preflight")
    assert result.exit_code == 0 and "preflight on" not in result.output


def test_run_checks_the_job_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import rlft

    validations: list[int] = []
    validate = rlft.Dataset.validate

    def counting(self: rlft.Dataset, *args: Any, **kwargs: Any) -> Any:
        validations.append(1)
        return validate(self, *args, **kwargs)

    monkeypatch.setattr(rlft.Dataset, "validate", counting)
    result = invoke("run", project(tmp_path / "p"), "--no-preflight", "--detach")
    assert result.exit_code == 0 and "created job" in result.output
    assert len(validations) == 1  # rlft run checks, then submit and create reuse the fact


@pytest.mark.parametrize(
    "error",
    [
        ProviderConnectionError("connection refused", provider="fake"),
        BadRequestError(
            "model not found: use an inference profile", provider="fake", status_code=400
        ),
        UsageError("no such inference id"),
    ],
)
def test_a_preflight_that_cannot_run_is_skipped_and_the_create_goes_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    async def broken(self: Any, **kwargs: Any) -> list[str]:
        raise error

    monkeypatch.setattr(FakeProvider, "generate", broken)
    result = invoke("run", project(tmp_path / "p"), "--detach")
    assert result.exit_code == 0, result.output
    assert f"preflight skipped: {str(error).splitlines()[0]}" in result.output
    assert "created job rlft-" in result.output and len(stored()) == 1
    as_json = invoke("run", project(tmp_path / "q"), "--detach", "--json", "--again")
    kinds = [line["kind"] for line in json_lines(as_json)]
    assert kinds == ["preflight_skipped", "created"]


def test_running_the_same_job_file_again_finds_the_first_job_unless_told(tmp_path: Path) -> None:
    job_file = project(tmp_path / "p")
    first = invoke("run", job_file, "--no-preflight")
    assert first.exit_code == 0 and "created job" in first.output
    second = invoke("run", job_file, "--no-preflight")
    assert second.exit_code == 0
    assert "an identical job already ran" in second.output and "--again" in second.output
    assert len(stored()) == 1  # nothing paid twice
    third = invoke("run", job_file, "--no-preflight", "--again")
    assert third.exit_code == 0 and "created job" in third.output
    assert len(stored()) == 2


def test_a_guard_pause_exits_3_and_is_summarised(tmp_path: Path) -> None:
    gamed = [(0.2, 0.18), (0.5, 0.25), (0.7, 0.3), (0.8, 0.31), (0.9, 0.3)]
    script = "".join(
        f"[[fake.script]]\ntrain_reward_mean = {t}\nvalid_reward_mean = {v}\n" for t, v in gamed
    )
    toml = project(tmp_path / "p", fake=script)
    result = invoke("run", toml, "--no-preflight", "--max-gap", "0.2", "--gap-evals", "3")
    assert result.exit_code == 3, result.output
    assert "guard reward_gap:" in result.output and "-> paused" in result.output
    (row,) = stored()
    assert row.status == "paused"


def test_a_budget_without_a_rate_fails_before_anything_is_created(tmp_path: Path) -> None:
    result = invoke("run", project(tmp_path / "p"), "--no-preflight", "--budget", "100")
    assert result.exit_code == 2
    assert "no training rate for provider 'fake'" in result.output and "--rate" in result.output
    assert stored() == []
    script = "[[fake.script]]\ntrain_reward_mean = 0.5\nstep_seconds = 3600\n" * 3
    priced = invoke(
        "run", project(tmp_path / "q", fake=script), "--no-preflight", "--budget", "15",
        "--rate", "10", "--guard-action", "cancel",
    )  # fmt: skip
    assert priced.exit_code == 1 and "guard budget:" in priced.output
    assert "-> cancelled" in priced.output


def test_preflight_command(tmp_path: Path) -> None:
    toml = project(tmp_path / "p")
    result = invoke("preflight", toml, "--json", "-k", "4")
    assert result.exit_code == 0
    (report,) = json_lines(result)
    assert len(report["samples"]) == 4 and report["warnings"] == []
    zero = project(tmp_path / "z", fake='completions = ["nope"]')
    assert invoke("preflight", zero).exit_code == 0
    strict = invoke("preflight", zero, "--strict")
    assert strict.exit_code == 1 and "near 0" in strict.output


def test_detach_then_reattach_and_control_from_anywhere(tmp_path: Path) -> None:
    toml = project(tmp_path / "p", fake="steps = 40")
    created = invoke("run", toml, "--no-preflight", "--detach", "--json")
    assert created.exit_code == 0
    (line,) = json_lines(created)
    local_id, job_id = line["local_id"], line["id"]

    listed = json_lines(invoke("jobs", "list", "--json"))[0]
    assert [job["local_id"] for job in listed] == [local_id]
    assert json_lines(invoke("jobs", "list", "--json", "--status", "succeeded"))[0] == []
    assert len(json_lines(invoke("jobs", "list", "--json", "--label", "team=support"))[0]) == 1
    assert "KEY=VALUE" in invoke("jobs", "list", "--label", "oops").output

    shown = json_lines(invoke("jobs", "show", job_id, "--json"))[0]
    assert shown["local_id"] == local_id and shown["status"] == "running"
    assert invoke("jobs", "pause", local_id, "--json").exit_code == 0
    assert json_lines(invoke("jobs", "show", local_id, "--json"))[0]["status"] == "paused"
    assert "running" in invoke("jobs", "resume", local_id).output
    events = json_lines(invoke("jobs", "events", local_id, "--json"))
    messages = [e["message"] for e in events]
    assert messages.index("status paused") < messages.index("status running", 3)
    checkpoints = json_lines(invoke("jobs", "checkpoints", local_id, "--json"))[0]
    assert all(c["job_id"] == job_id for c in checkpoints)
    cancelled = json_lines(invoke("jobs", "cancel", local_id, "--json"))[0]
    assert cancelled["status"] == "cancelled"

    watched = invoke("jobs", "watch", local_id, "--json")
    assert watched.exit_code == 1  # cancelled
    assert json_lines(watched)[-1]["status"] == "cancelled"
    saved = json_lines(invoke("jobs", "events", local_id, "--stored", "--json"))
    assert saved and saved[-1]["message"] == "status cancelled"


def test_jobs_watch_follows_every_unfinished_job(tmp_path: Path) -> None:
    for name in ("a", "b"):
        toml = project(tmp_path / name)
        assert invoke("run", toml, "--no-preflight", "--detach").exit_code == 0
    result = invoke("jobs", "watch", "--json")
    assert result.exit_code == 0, result.output
    summaries = [line for line in json_lines(result) if line["kind"] == "summary"]
    assert sorted(s["status"] for s in summaries) == ["succeeded", "succeeded"]
    assert "no unfinished jobs" in invoke("jobs", "watch").output


def test_an_unknown_job_is_a_clear_error(tmp_path: Path) -> None:
    result = invoke("jobs", "show", "rlft-nope")
    assert result.exit_code == 2 and "error:" in result.output
    stored_events = invoke("jobs", "events", "rlft-nope", "--stored")
    assert stored_events.exit_code == 2 and "no job 'rlft-nope' in the job store" in (
        stored_events.output
    )
