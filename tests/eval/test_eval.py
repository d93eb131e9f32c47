"""rlft.evaluate and `rlft eval`: real transformers sampling, real grading, the plot, bad input."""

from __future__ import annotations

import json
import sys
import types
from importlib.machinery import ModuleSpec

import pytest
from click.testing import CliRunner

import rlft
from rlft import Checkpoint, Dataset
from rlft._eval import local_engine
from rlft.cli import main
from rlft.exceptions import UsageError
from rlft.graders import grade_many
from rlft.testing import FakeProvider, FakeSettings

pytestmark = pytest.mark.anyio

PNG = b"\x89PNG\r\n\x1a\n"


async def test_base_and_checkpoint_are_sampled_and_graded(models, grader, dataset_file, tmp_path):
    base, checkpoint = models
    dataset = Dataset.from_jsonl(dataset_file)
    plot = tmp_path / "out" / "eval.png"
    ckpt = Checkpoint(id="checkpoint-8", job_id="j", step=8, model=str(checkpoint))
    report = await rlft.evaluate(
        [str(base), ckpt], dataset=dataset, grader=grader, max_tokens=1, plot=plot
    )
    assert isinstance(report, rlft.EvalReport)
    first, second = report.scores
    assert (first.label, second.label) == ("base_model", "step 8")
    assert first.source == second.source == "transformers"
    # The edited checkpoint always says "yes": right on the 3 even numbers of 6.
    assert second.completions == ["yes"] * 6
    assert second.mean == 0.5 and second.pass_rate == 0.5
    assert second.grader_means == {"exact": 0.5} and second.error_rate == 0.0
    # The base model's completions are whatever it generated; its scores are their grades.
    regraded = await grade_many(grader, first.completions, [row.item for row in dataset])
    assert first.scores == [result.score for result in regraded]
    assert first.count == 6 and all(isinstance(text, str) for text in first.completions)
    assert report.best() == (second if second.mean > first.mean else first)
    assert plot.read_bytes().startswith(PNG)
    table = report.format()
    assert "step 8" in table and "0.500" in table and "50%" in table


async def test_hosted_model_goes_through_the_provider_generate(grader, dataset_file):
    provider = FakeProvider(settings=FakeSettings(completions=("yes", "no", "no")))
    report = await rlft.evaluate(
        ["ft:base", "ft:tuned"], dataset=Dataset.from_jsonl(dataset_file), grader=grader,
        provider=provider, limit=3,
    )  # fmt: skip
    assert provider.calls["generate"] == 2
    score = report.scores[0]
    assert score.source == "provider" and score.completions == ["yes", "no", "no"]
    assert score.scores == [1.0, 1.0, 0.0] and score.mean == pytest.approx(2 / 3)


async def test_grader_errors_are_counted(dataset_file):
    from rlft.graders import Python

    failing = Python(name="boom", source="def grade(sample, item):\n    raise ValueError('x')\n")
    provider = FakeProvider(settings=FakeSettings(completions=("yes",)))
    report = await rlft.evaluate(
        ["m"], dataset=Dataset.from_jsonl(dataset_file), grader=failing, provider=provider, limit=2
    )
    score = report.scores[0]
    assert score.mean == 0.0 and score.error_rate == 1.0
    assert sum(score.error_rates.values()) >= 1.0


def test_vllm_is_chosen_when_importable(monkeypatch, models, grader, dataset_file):
    import anyio

    assert local_engine() == "transformers"  # not installed here
    calls: list[tuple[str, int]] = []

    class LLM:
        def __init__(self, model: str) -> None:
            calls.append((model, 0))

        def chat(self, prompts, params):
            calls.append(("chat", len(prompts)))
            output = types.SimpleNamespace(text=" yes ")
            return [types.SimpleNamespace(outputs=[output]) for _ in prompts]

    stub = types.ModuleType("vllm")
    stub.__spec__ = ModuleSpec("vllm", None)
    stub.LLM = LLM  # type: ignore[attr-defined]
    stub.SamplingParams = lambda **kw: kw  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", stub)
    assert local_engine() == "vllm"
    base, _ = models
    report = anyio.run(
        lambda: rlft.evaluate([base], dataset=Dataset.from_jsonl(dataset_file), grader=grader)
    )
    assert report.scores[0].source == "vllm" and calls == [(str(base), 0), ("chat", 6)]


async def test_a_folder_that_does_not_load_is_one_clear_line(tmp_path, grader, dataset_file):
    dataset = Dataset.from_jsonl(dataset_file)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match="not a model folder .no config.json.; pass a folder"):
        await rlft.evaluate([empty], dataset=dataset, grader=grader)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    with pytest.raises(UsageError, match="the model does not load"):
        await rlft.evaluate([broken], dataset=dataset, grader=grader)
    with pytest.raises(UsageError, match="no provider to sample"):
        await rlft.evaluate(["gpt-x"], dataset=dataset, grader=grader)


def test_cli_prints_the_table_and_writes_the_plot(models, grader, dataset_file, tmp_path):
    base, checkpoint = models
    grader_file = tmp_path / "grader.json"
    grader_file.write_text(json.dumps(grader.to_dict()))
    plot = tmp_path / "cmp.png"
    args = ["eval", "--grader", str(grader_file), "--dataset", str(dataset_file), "-m", str(base),
            "-m", str(checkpoint), "--max-tokens", "1", "--plot", str(plot)]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["model", "n", "mean", "pass", "exact", "errors"]
    assert lines[2].split() == ["checkpoint-8", "6", "0.500", "50%", "0.500", "0%"]
    assert plot.read_bytes().startswith(PNG)
    out = CliRunner().invoke(main, [*args[:-2], "--no-plot", "--json"])
    assert json.loads(out.stdout)["scores"][1]["mean"] == 0.5


def test_cli_bad_folder_is_one_line_no_traceback(grader, dataset_file, tmp_path):
    grader_file = tmp_path / "grader.json"
    grader_file.write_text(json.dumps(grader.to_dict()))
    result = CliRunner().invoke(
        main, ["eval", "--grader", str(grader_file), "--dataset", str(dataset_file), "-m",
               str(tmp_path), "--no-plot"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: ") and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and "config.json" in result.output
    missing = CliRunner().invoke(main, ["eval", "-m", "x"])
    assert missing.exit_code == 2 and "--grader and --dataset" in missing.output


def test_cli_job_adds_the_base_model_and_every_checkpoint(tmp_path, monkeypatch):
    folder = tmp_path / "p"
    folder.mkdir()
    rows = [{"messages": [{"role": "user", "content": f"t {i}"}], "label": "a"} for i in range(4)]
    (folder / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (folder / "job.toml").write_text(
        'train = "train.jsonl"\n[grader]\ntype = "string_check"\nname = "label"\n'
        'input = "{{ sample.output_text }}"\nreference = "{{ item.label }}"\noperation = "eq"\n'
    )
    (folder / "rlft.toml").write_text(
        f'provider = "fake"\n[fake]\nstate_dir = "{folder / "state"}"\nsteps = 4\n'
        'completions = ["a", "b"]\n'
    )
    created = CliRunner().invoke(
        main, ["run", str(folder / "job.toml"), "--no-preflight", "--json"]
    )
    assert created.exit_code == 0, created.output
    (summary,) = [json.loads(x) for x in created.stdout.splitlines() if '"summary"' in x]
    local_id = summary["local_id"]
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        main, ["eval", str(folder / "job.toml"), "--job", local_id, "--no-plot", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    labels = [score["label"] for score in report["scores"]]
    assert labels == ["fake-model", "step 2", "step 4"]
    # The fake backend answers "a", "b", "a", "b": half right, for every model it serves.
    assert all(s["source"] == "provider" and s["mean"] == 0.5 for s in report["scores"])
    assert report["rows"] == 4 and report["grader"] == "label"


async def test_multi_grader_means_per_sub_grader(dataset_file):
    from rlft.graders import Multi, StringCheck

    sample = "{{ sample.output_text }}"
    multi = Multi(
        name="both",
        graders={
            "exact": StringCheck(
                name="exact", input=sample, reference="{{ item.answer }}", operation="eq"
            ),
            "says_yes": StringCheck(name="says_yes", input=sample, reference="y", operation="like"),
        },
        calculate_output="(exact + says_yes) / 2",
    )
    provider = FakeProvider(settings=FakeSettings(completions=("yes", "yes", "no", "no")))
    report = await rlft.evaluate(
        ["m"], dataset=Dataset.from_jsonl(dataset_file), grader=multi, provider=provider, limit=4
    )
    # Answers: yes, no, yes, no. Completions: yes, yes, no, no.
    score = report.scores[0]
    assert score.grader_means == {"exact": 0.5, "says_yes": 0.5}
    assert score.scores == [1.0, 0.5, 0.0, 0.5] and score.mean == 0.5
    assert score.pass_rate == 0.25  # only a score of 1.0 passes without a pass_threshold
    header = report.format().splitlines()[0].split()
    assert header == ["model", "n", "mean", "pass", "exact", "says_yes", "errors"]


async def test_job_models_find_a_local_jobs_base_model_folder(models, tmp_path):
    """A local job's folder: base_model/ beside output/checkpoint-N (the local runner's layout)."""
    import shutil
    from types import SimpleNamespace

    from rlft.cli._eval import _job_models

    base, checkpoint = models
    root = tmp_path / "job"
    shutil.copytree(base, root / "base_model")
    shutil.copytree(checkpoint, root / "output" / "checkpoint-8")
    saved = Checkpoint(
        id="checkpoint-8", job_id="j", step=8, model=str(root / "output" / "checkpoint-8")
    )

    async def checkpoints():
        return [saved]

    job = SimpleNamespace(record=SimpleNamespace(model=None), checkpoints=checkpoints)

    async def get(job_id):
        assert job_id == "rlft-0123456789ab"
        return job

    client = SimpleNamespace(jobs=SimpleNamespace(get=get))
    found = await _job_models(client, "rlft-0123456789ab")  # type: ignore[arg-type]
    assert found == [str(root / "base_model"), saved]
    empty = SimpleNamespace(record=SimpleNamespace(model=None), checkpoints=lambda: _none())
    client.jobs.get = lambda job_id: _value(empty)
    with pytest.raises(UsageError, match="has no base model or checkpoints to evaluate yet"):
        await _job_models(client, "rlft-0123456789ab")  # type: ignore[arg-type]


async def _none():
    return []


async def _value(value):
    return value
