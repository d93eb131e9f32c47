"""Neutral hyperparameters -> GRPOConfig keywords and the launch command. No training here."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

from rlft._models import Hyperparameters
from rlft.exceptions import HyperparameterError, MissingDependencyError
from rlft_providers.local._plan import (
    RLFT_OPTIONS,
    AccelerateOptions,
    grpo_config_fields,
    plan_training,
    worker_command,
)


def plan(model: str | None = None, rows: int = 100, validation: bool = False, **hp: object):
    return plan_training(
        Hyperparameters(**hp), model=model, train_rows=rows, has_validation=validation
    )


def test_batch_size_counts_prompts_and_samples_map_to_generations() -> None:
    p = plan(batch_size=8, samples_per_prompt=16, learning_rate=2e-3, max_completion_tokens=3)
    assert p.grpo["num_generations"] == 16
    assert p.grpo["per_device_train_batch_size"] == 128  # 8 prompts x 16 completions
    assert p.grpo["learning_rate"] == 2e-3
    assert p.grpo["max_completion_length"] == 3
    assert p.grpo["num_train_epochs"] == 1 and "max_steps" not in p.grpo
    assert p.grpo["save_total_limit"] is None  # rotation would delete folders events point at
    assert p.grpo["logging_steps"] == 1 and p.grpo["report_to"] == "none"


def test_tiny_model_gets_the_measured_recipe_and_named_models_trl_defaults() -> None:
    tiny = plan(max_steps=10)
    assert tiny.grpo["max_steps"] == 10 and "num_train_epochs" not in tiny.grpo
    assert tiny.grpo["num_generations"] == 16 and tiny.grpo["learning_rate"] == 1e-3
    assert tiny.grpo["gradient_checkpointing"] is False
    named = plan(model="org/model", learning_rate_multiplier=2.0)
    assert named.grpo["num_generations"] == 8
    assert named.grpo["learning_rate"] == pytest.approx(2e-6)  # TRL's 1e-6 base, doubled
    assert "gradient_checkpointing" not in named.grpo  # the worker decides per device


def test_validation_sets_eval_steps_and_whole_eval_groups() -> None:
    p = plan(validation=True, eval_interval=25, eval_samples=3, batch_size=8, samples_per_prompt=16)
    assert p.grpo["eval_strategy"] == "steps" and p.grpo["eval_steps"] == 25
    assert p.grpo["num_generations_eval"] == 3
    assert p.grpo["per_device_eval_batch_size"] % 3 == 0
    assert p.grpo["save_steps"] == 25  # checkpoints land on evaluation steps, with their reward


@pytest.mark.parametrize(
    ("hp", "name", "fragment"),
    [
        ({"samples_per_prompt": 1}, "samples_per_prompt", ">= 2"),
        ({"batch_size": 500}, "batch_size", "<= 100"),
        ({"epochs": 2, "max_steps": 5}, "max_steps", "choose one"),
        ({"learning_rate": 1e-3, "learning_rate_multiplier": 2.0}, "learning_rate_multiplier", ""),
        ({"reasoning_effort": "high"}, "reasoning_effort", "hosted"),
        ({"compute_multiplier": 2.0}, "compute_multiplier", "hosted"),
        ({"eval_interval": 10}, "eval_interval", "validation set"),
        (
            {"provider_options": {"num_generations": 4}},
            "provider_options.num_generations",
            "samples_per_prompt",
        ),
        ({"provider_options": {"output_dir": "/tmp/x"}}, "provider_options.output_dir", "job"),
        (
            {"provider_options": {"temprature": 0.7}},
            "provider_options.temprature",
            "did you mean temperature",
        ),
    ],
)
def test_bad_settings_are_refused_with_the_field_and_the_fix(
    hp: dict[str, object], name: str, fragment: str
) -> None:
    with pytest.raises(HyperparameterError) as caught:
        plan(**hp)
    assert caught.value.name == name
    assert caught.value.provider == "local"
    assert fragment in str(caught.value)


def test_batch_must_split_evenly_over_processes() -> None:
    options = {"accelerate": {"num_processes": 3}}
    with pytest.raises(HyperparameterError, match=r"8 \* 16 = 128.*3 process"):
        plan(batch_size=8, samples_per_prompt=16, provider_options=options)
    p = plan(batch_size=6, samples_per_prompt=16, provider_options=options)
    assert p.num_processes == 3
    assert p.grpo["per_device_train_batch_size"] == 32  # 6 x 16 / 3 processes


def test_provider_options_pass_through_and_win() -> None:
    p = plan(provider_options={"beta": 0.04, "temperature": 0.8, "logging_steps": 5})
    assert p.grpo["beta"] == 0.04 and p.grpo["temperature"] == 0.8
    assert p.grpo["logging_steps"] == 5


def test_field_names_read_from_source_match_grpo_config() -> None:
    from trl import GRPOConfig

    fields = grpo_config_fields()
    assert fields == {f.name for f in dataclasses.fields(GRPOConfig)}
    assert not set(RLFT_OPTIONS) & fields  # our own option names never shadow TRL's


def test_plan_builds_a_real_grpo_config(tmp_path: Path) -> None:
    from trl import GRPOConfig

    p = plan(validation=True, provider_options={"beta": 0.02, "vllm_mode": "server"})
    config = GRPOConfig(**p.grpo, output_dir=str(tmp_path), use_cpu=True, bf16=False)
    assert config.per_device_train_batch_size == 128 and config.beta == 0.02
    assert config.vllm_mode == "server"  # passed through for when use_vllm is on


def test_vllm_needs_vllm_installed() -> None:
    with pytest.raises(MissingDependencyError, match="vllm"):
        plan(provider_options={"use_vllm": True, "vllm_mode": "colocate"})


def test_lora_options_fill_defaults() -> None:
    p = plan(model="org/model", provider_options={"lora": {"r": 8}})
    assert p.lora == {"r": 8, "lora_alpha": 32, "target_modules": "all-linear"}
    assert "lora" not in p.grpo
    with pytest.raises(HyperparameterError, match="LoraConfig"):
        plan(provider_options={"lora": "yes"})


def test_plain_command_runs_the_worker_module(tmp_path: Path) -> None:
    assert worker_command("/py", tmp_path, None) == [
        "/py",
        "-m",
        "rlft_providers.local._worker",
        str(tmp_path),
    ]


def test_accelerate_command_and_config(tmp_path: Path) -> None:
    p = plan(
        batch_size=4,
        samples_per_prompt=8,
        provider_options={
            "accelerate": {
                "config_file": "multi_gpu",  # a config TRL ships, by name
                "num_processes": 4,
                "main_process_port": 29501,
                "extra_args": ["--dynamo_backend", "no"],
            },
            "use_vllm": False,
            "vllm_mode": "server",
            "vllm_server_base_url": "http://10.0.0.5:8000",
        },
    )
    assert p.accelerate is not None
    shipped = Path(p.accelerate.config_file or "")
    assert shipped.name == "multi_gpu.yaml" and shipped.parent.name == "accelerate_configs"
    assert p.grpo["per_device_train_batch_size"] == 8  # 4 prompts x 8 / 4 processes
    assert p.grpo["vllm_server_base_url"] == "http://10.0.0.5:8000"
    command = worker_command(sys.executable, tmp_path, p.accelerate)
    assert command == [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(shipped),
        "--num_processes", "4",
        "--main_process_port", "29501",
        "--dynamo_backend", "no",
        "-m", "rlft_providers.local._worker", str(tmp_path),
    ]  # fmt: skip


def test_accelerate_processes_come_from_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "two.yaml"
    config.write_text("distributed_type: MULTI_GPU\nnum_processes: 2\n")
    p = plan(batch_size=8, provider_options={"accelerate": {"config_file": str(config)}})
    assert p.num_processes == 2 and p.grpo["per_device_train_batch_size"] == 64


def test_bad_accelerate_options_name_the_field() -> None:
    with pytest.raises(HyperparameterError, match="accelerate.num_procs"):
        plan(provider_options={"accelerate": {"num_procs": 2}})
    with pytest.raises(HyperparameterError, match="one of TRL's: .*zero3"):
        plan(provider_options={"accelerate": {"config_file": "zero9"}})
    assert AccelerateOptions(num_processes=2).num_processes == 2


def test_the_tiny_model_sizes_unset_settings_from_the_data_and_says_why() -> None:
    from rlft_providers.local._plan import data_shape, grader_item_fields

    source = "def grade(sample, item):\n    return float(sample['output_text'] == item['city'])\n"
    fields = grader_item_fields({"type": "python", "source": source})
    assert fields == ("city",)
    items = [{"city": "new york", "note": "a long note the grader never reads"}, {"city": "rome"}]
    data = data_shape(items, rows=40, fields=fields)
    assert data.answer_tokens == 2 and data.answer_fields == ("city",)
    plan = plan_training(
        Hyperparameters(), model=None, train_rows=40, has_validation=False, data=data
    )
    assert plan.grpo["max_completion_length"] == 2  # not the fallback 8
    assert plan.grpo["num_train_epochs"] == 40  # 5 steps an epoch, ~200 steps in all
    assert "max_completion_length=2 (the longest reference answer (city) is 2" in plan.summary()
    assert "num_train_epochs=40" in plan.summary()
    # What the job sets is the job's: no reason, no override.
    given = Hyperparameters(epochs=2, max_completion_tokens=5, batch_size=4)
    plan = plan_training(given, model=None, train_rows=40, has_validation=False, data=data)
    assert plan.grpo["max_completion_length"] == 5 and plan.grpo["num_train_epochs"] == 2
    assert plan.reasons == {} and plan.summary() == ""
    # A named model keeps its own defaults: the tiny tokenizer says nothing about its tokens.
    named = plan_training(
        Hyperparameters(), model="Qwen/Qwen3-0.6B", train_rows=40, has_validation=False, data=data
    )
    assert named.grpo["max_completion_length"] == 256 and named.reasons == {}


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("multi_gpu", "MULTI_GPU"),  # DDP
        ("zero1", "DEEPSPEED"),
        ("zero2", "DEEPSPEED"),
        ("zero3", "DEEPSPEED"),
        ("fsdp1", "FSDP"),
        ("fsdp2", "FSDP"),
    ],
)
def test_each_config_trl_ships_gives_the_command_that_would_run(
    name: str, kind: str, tmp_path: Path
) -> None:
    import yaml

    options = {"accelerate": {"config_file": name, "num_machines": 2, "machine_rank": 1,
               "main_process_ip": "10.0.0.1", "main_process_port": 29500}}  # fmt: skip
    p = plan(batch_size=8, samples_per_prompt=8, provider_options=options)
    assert p.accelerate is not None and p.accelerate.config_file is not None
    config = yaml.safe_load(Path(p.accelerate.config_file).read_text())
    assert config["distributed_type"] == kind
    assert p.num_processes == config["num_processes"] == 8  # read from the file
    assert p.grpo["per_device_train_batch_size"] == 8  # 8 prompts x 8 samples / 8 processes
    command = worker_command(sys.executable, tmp_path, p.accelerate)
    assert command[3:5] == ["--config_file", p.accelerate.config_file]
    assert "--multi_gpu" not in command  # the file picks the launcher
    machines = ["--num_machines", "2", "--machine_rank", "1"]
    assert command[5:13] == [
        *machines,
        "--main_process_ip",
        "10.0.0.1",
        "--main_process_port",
        "29500",
    ]


def test_processes_without_a_config_file_get_the_multi_process_launcher(tmp_path: Path) -> None:
    def command(**accelerate: object) -> list[str]:
        p = plan(batch_size=8, provider_options={"accelerate": accelerate})
        return worker_command(sys.executable, tmp_path, p.accelerate)

    assert "--multi_gpu" in command(num_processes=2)  # torchrun; gloo on a CPU
    assert "--multi_gpu" not in command(num_processes=1)
    assert "--multi_gpu" not in command(num_processes=2, extra_args=["--use_deepspeed"])
    assert command(num_processes=2, extra_args=["--multi_gpu"]).count("--multi_gpu") == 1


@pytest.mark.parametrize("mode", ["colocate", "server"])
def test_vllm_modes_give_the_grpo_settings_that_would_run(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    # No GPU and no vLLM here: pretend only that vllm is importable, to see the settings.
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: object() if n == "vllm" else real(n, *a)
    )
    options: dict[str, object] = {"use_vllm": True, "vllm_mode": mode}
    if mode == "server":
        options["vllm_server_base_url"] = "http://10.0.0.5:8000"
    else:
        options["vllm_gpu_memory_utilization"] = 0.3
    options["accelerate"] = {"num_processes": 2}
    p = plan(batch_size=8, provider_options=options)
    assert p.grpo["use_vllm"] is True and p.grpo["vllm_mode"] == mode
    assert p.num_processes == 2 and p.grpo["per_device_train_batch_size"] == 64  # 8 x 16 / 2
    if mode == "server":
        assert p.grpo["vllm_server_base_url"] == "http://10.0.0.5:8000"
    else:
        assert p.grpo["vllm_gpu_memory_utilization"] == 0.3
    monkeypatch.setattr(importlib.util, "find_spec", real)
    with pytest.raises(MissingDependencyError, match="vllm"):
        plan(provider_options={"use_vllm": True, "vllm_mode": mode})


def test_an_unreadable_accelerate_config_is_one_line_with_the_fix(tmp_path: Path) -> None:
    config = tmp_path / "broken.yaml"
    config.write_text("num_processes: [2\n")
    with pytest.raises(HyperparameterError) as caught:
        plan(provider_options={"accelerate": {"config_file": str(config)}})
    message = str(caught.value)
    assert "provider_options.accelerate.config_file" in message and "accelerate config" in message
    assert "\n" not in message.strip()


def test_more_processes_than_gpus_is_one_line_with_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rlft_providers.local import _plan

    monkeypatch.setattr(_plan, "_gpu_count", lambda: 1)  # a one-GPU machine
    with pytest.raises(HyperparameterError) as caught:
        plan(provider_options={"accelerate": {"num_processes": 2}})
    message = str(caught.value)
    assert "provider_options.accelerate.num_processes" in message and "at most 1" in message
    assert "\n" not in message.strip()
    # Two machines share the processes, and a CPU-only machine runs them with gloo.
    plan(provider_options={"accelerate": {"num_processes": 2, "num_machines": 2}})
    monkeypatch.setattr(_plan, "_gpu_count", lambda: 0)
    plan(provider_options={"accelerate": {"num_processes": 2}})
