"""From neutral hyperparameters to ``GRPOConfig`` keywords and the command that runs them.

Pure and light: no torch, trl or transformers import. ``GRPOConfig``'s field names are read from
TRL's installed source with ``ast``, so unknown ``provider_options`` fail before any upload.
"""

from __future__ import annotations

import ast
import difflib
import functools
import importlib.util
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rlft.exceptions import HyperparameterError, MissingDependencyError
from rlft.provider import Hyperparameters
from rlft.tiny import strings_in

__all__ = [
    "TINY_MODEL",
    "AccelerateOptions",
    "DataShape",
    "GraderGuardOptions",
    "ImageShape",
    "ModelKind",
    "Plan",
    "grpo_config_fields",
    "image_shape",
    "is_tiny",
    "model_kind",
    "plan_training",
    "worker_command",
]

PROVIDER = "local"
TINY_MODEL = "rlft/tiny"
WORKER_MODULE = "rlft_providers.local._worker"

# Keys of provider_options that rlft reads itself; everything else must be a GRPOConfig field.
RLFT_OPTIONS = ("accelerate", "grader_guard", "lora")

# GRPOConfig fields that a neutral hyperparameter sets: setting them in provider_options too
# would be ambiguous, so the error names the neutral field to use.
NEUTRAL_OWNED = {
    "num_train_epochs": "epochs",
    "max_steps": "max_steps",
    "per_device_train_batch_size": "batch_size (prompts per step)",
    "learning_rate": "learning_rate",
    "num_generations": "samples_per_prompt",
    "max_completion_length": "max_completion_tokens",
    "eval_steps": "eval_interval",
    "num_generations_eval": "eval_samples",
    "seed": "seed",
}
# Fields the runner owns: the job folder decides them.
RUNNER_OWNED = ("output_dir", "resume_from_checkpoint", "logging_dir")

# The tiny model's recipe (reference/trl_local.md §4: 0.03 -> 0.96+ in 200 steps, 5/5 seeds).
# 16 generations per prompt matter: with 8, the policy collapses onto one or two labels.
# max_completion_length is derived from the data (DataShape); 8 is only the fallback.
TINY_DEFAULTS: dict[str, Any] = {
    "learning_rate": 1e-3,
    "num_generations": 16,
    "max_completion_length": 8,
    "lr_scheduler_type": "constant",
    "warmup_steps": 0,
    "weight_decay": 0.0,
    "gradient_checkpointing": False,  # 1.15x slower on a tiny model, for no memory it needs
}
# A named model keeps TRL's own defaults except where they suit no one here.
MODEL_DEFAULTS: dict[str, Any] = {
    "num_generations": 8,
    "max_completion_length": 256,
}
DEFAULT_BATCH_PROMPTS = 8
DEFAULT_EVAL_INTERVAL = 50
DEFAULT_EVAL_SAMPLES = 4
DEFAULT_SAVE_STEPS = 50
# The tiny model learns from ~200 optimizer steps (reference/trl_local.md §4); fewer epochs
# than that on a small dataset leave it at chance, so the default epoch count reaches it.
TINY_TARGET_STEPS = 200
TINY_MAX_COMPLETION = 64  # the tiny model has 256 positions, shared with the prompt

# What the tiny model's word-level tokenizer splits on (tokenizers' Whitespace pre-tokenizer).
_TINY_TOKENS = re.compile(r"\w+|[^\w\s]+")
# How graders name item fields: {{ item.label }} in templates, item["label"] in Python.
_ITEM_FIELD = re.compile(r"""item(?:\.get\(\s*['"](\w+)['"]|\[\s*['"](\w+)['"]\s*\]|\.(\w+))""")


@dataclass(frozen=True, kw_only=True)
class DataShape:
    """What the plan reads from the training rows to size a tiny-model run."""

    rows: int
    answer_tokens: int | None = None
    """The longest reference answer, in tiny-model tokens (``None``: no string answers)."""
    answer_fields: tuple[str, ...] = ()
    """The item fields that answer was read from."""


def tiny_token_count(text: str) -> int:
    """How many tokens the tiny model's word-level tokenizer makes of ``text``."""
    return len(_TINY_TOKENS.findall(text))


def grader_item_fields(grader: Mapping[str, Any]) -> tuple[str, ...]:
    """The item fields a grader reads (``item.x`` in templates, ``item["x"]`` in Python)."""
    text = "\n".join(strings_in(grader))
    found = {next(g for g in m.groups() if g) for m in _ITEM_FIELD.finditer(text)}
    return tuple(sorted(found))


def data_shape(
    items: Iterable[Mapping[str, Any]], *, rows: int, fields: Iterable[str] = ()
) -> DataShape:
    """Measure the longest reference answer: the string item fields the grader reads, or every
    string item field when the grader names none."""
    wanted = set(fields)
    longest: int | None = None
    used: set[str] = set()
    for item in items:
        for name, value in item.items():
            if wanted and name not in wanted:
                continue
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                used.add(name)
                count = tiny_token_count(str(value))
                longest = count if longest is None else max(longest, count)
    return DataShape(rows=rows, answer_tokens=longest, answer_fields=tuple(sorted(used)))


def is_tiny(model: str | None) -> bool:
    """True when the job trains the tiny demonstration model (no model, or ``rlft/tiny``)."""
    return model is None or model == TINY_MODEL


# Content parts that hold an image (rlft.tiny_vlm.IMAGE_PART_TYPES, without importing it).
_IMAGE_PARTS = frozenset({"image_url", "input_image", "image"})


@dataclass(frozen=True, kw_only=True)
class ImageShape:
    """The images in a dataset's prompts: the local runner trains a vision-language model."""

    rows: int
    """Rows with at least one image."""
    images: int
    """Images in all rows."""
    most: int
    """The most images in one row."""


def image_shape(prompts: Iterable[Sequence[Mapping[str, Any]]]) -> ImageShape | None:
    """Count the image content parts in each row's messages; ``None`` when there are none.

    Args:
        prompts: One list of chat messages per row (a TRL row's ``prompt``, an
            ``Example.messages``).
    """
    rows = images = most = 0
    for messages in prompts:
        count = sum(
            1
            for message in messages
            if isinstance(message.get("content"), list)
            for part in message["content"]
            if isinstance(part, Mapping) and part.get("type") in _IMAGE_PARTS
        )
        if count:
            rows, images, most = rows + 1, images + count, max(most, count)
    return ImageShape(rows=rows, images=images, most=most) if rows else None


ModelKind = Literal["tiny", "tiny-vlm", "causal-lm", "vlm"]


def model_kind(model: str | None, images: ImageShape | None) -> ModelKind:
    """Which model the worker trains: rows with images pick the vision-language path.

    ``tiny-vlm``: ``rlft/tiny`` with images builds ``rlft.tiny_vlm``. ``vlm``: a named model
    loads with ``AutoModelForImageTextToText`` and ``AutoProcessor``. Otherwise the text paths:
    ``rlft.tiny``, or ``AutoModelForCausalLM`` and ``AutoTokenizer``.
    """
    if is_tiny(model):
        return "tiny-vlm" if images else "tiny"
    return "vlm" if images else "causal-lm"


class AccelerateOptions(BaseModel):
    """``provider_options["accelerate"]``: run the worker under ``accelerate launch``.

    Each field is the ``accelerate launch`` flag of the same name.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    num_processes: int | None = Field(default=None, ge=1)
    """Processes in total, across machines (usually one per GPU)."""
    config_file: str | None = None
    """An accelerate YAML file, or the name of one TRL ships (``multi_gpu``, ``zero3``, ...)."""
    num_machines: int | None = Field(default=None, ge=1)
    machine_rank: int | None = Field(default=None, ge=0)
    main_process_ip: str | None = None
    main_process_port: int | None = Field(default=None, ge=1, le=65535)
    mixed_precision: Literal["no", "fp16", "bf16", "fp8"] | None = None
    extra_args: list[str] = Field(default_factory=list)
    """Further ``accelerate launch`` flags, passed as given."""


class GraderGuardOptions(BaseModel):
    """``provider_options["grader_guard"]``: when the worker stops a job whose grader fails.

    The worker fails the job (resumable) once more than ``threshold`` of a step's grades fail
    for ``steps`` steps in a row; ``grader_guard = false`` switches it off.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    threshold: float = Field(default=0.5, ge=0, lt=1)
    steps: int = Field(default=3, ge=1)


@dataclass(frozen=True, kw_only=True)
class Plan:
    """What the worker will run: ``GRPOConfig`` keywords, LoRA, and how to launch it."""

    grpo: dict[str, Any]
    lora: dict[str, Any] | None
    accelerate: AccelerateOptions | None
    num_processes: int
    grader_guard: GraderGuardOptions | None = None
    reasons: dict[str, str] = field(default_factory=dict)
    """Why the runner chose a setting the job left unset: ``GRPOConfig`` field -> reason."""
    kind: ModelKind = "tiny"
    """The model the worker trains (``model_kind``): ``tiny-vlm``/``vlm`` when ``images`` was
    passed. The worker decides again from the rows it reads, so a plan made without
    ``images`` still trains image rows as a vision-language model."""

    def summary(self) -> str:
        """One line: each setting the runner chose, its value and why."""
        parts = [f"{name}={self.grpo.get(name)!r} ({why})" for name, why in self.reasons.items()]
        return "settings chosen from the data: " + "; ".join(parts) if parts else ""


def _error(name: str, value: Any, allowed: str) -> HyperparameterError:
    return HyperparameterError(provider=PROVIDER, name=name, value=value, allowed=allowed)


def plan_training(
    hp: Hyperparameters,
    *,
    model: str | None,
    train_rows: int,
    has_validation: bool,
    data: DataShape | None = None,
    images: ImageShape | None = None,
) -> Plan:
    """Map neutral hyperparameters to ``GRPOConfig`` keywords, checking every rule up front.

    ``batch_size`` counts prompts per optimizer step; TRL's ``per_device_train_batch_size``
    counts completions per process, so it is ``batch_size * samples_per_prompt`` divided over
    processes and gradient-accumulation steps (reference/trl_local.md §2).

    Raises:
        HyperparameterError: A value is out of range, two settings conflict, or a
            ``provider_options`` key is not a ``GRPOConfig`` field (the message lists close names).
        MissingDependencyError: An option needs a package that is not installed (vLLM, peft).

    For the tiny model, settings the job leaves unset come from ``data`` (see ``Plan.reasons``):
    the completion length is the longest reference answer, the batch fits the dataset, and the
    epoch count reaches the ~200 steps the tiny model needs.

    With ``images`` (rows whose prompts hold images) the plan picks the vision-language path
    (``Plan.kind``). The tiny VLM learns with the tiny model's own recipe: measured in
    docs/multimodal.md, it needs no other settings.
    """
    options = dict(hp.provider_options)
    reasons: dict[str, str] = {}
    tiny = is_tiny(model)
    defaults = TINY_DEFAULTS if tiny else MODEL_DEFAULTS
    _check_option_names(options)

    for name in ("reasoning_effort", "compute_multiplier"):
        value = getattr(hp, name)
        if value is not None:
            raise _error(name, value, "unset: a hosted-backend setting the local runner lacks")
    if hp.epochs is not None and hp.max_steps is not None:
        raise _error("max_steps", hp.max_steps, "unset when epochs is set: choose one of the two")
    if hp.learning_rate is not None and hp.learning_rate_multiplier is not None:
        raise _error(
            "learning_rate_multiplier",
            hp.learning_rate_multiplier,
            "unset when learning_rate is set: choose one of the two",
        )

    generations = hp.samples_per_prompt or defaults["num_generations"]
    if generations < 2:
        raise _error("samples_per_prompt", generations, ">= 2: GRPO compares samples of a prompt")
    prompts = hp.batch_size or DEFAULT_BATCH_PROMPTS
    if hp.batch_size is None and prompts > train_rows:
        prompts = train_rows
        reasons["per_device_train_batch_size"] = f"{prompts} prompts per step: the whole dataset"
    if prompts > train_rows:
        raise _error("batch_size", prompts, f"<= {train_rows}, the number of training rows")

    accelerate = _accelerate_options(options.pop("accelerate", None))
    grader_guard = _grader_guard_options(options.pop("grader_guard", True))
    processes = _num_processes(accelerate)
    _check_devices(accelerate, processes)
    accumulation = int(options.get("gradient_accumulation_steps", 1))
    completions = prompts * generations
    per_step = processes * accumulation
    if completions % per_step:
        raise _error(
            "batch_size",
            prompts,
            f"a value where batch_size * samples_per_prompt ({prompts} * {generations} = "
            f"{completions}) divides evenly over {processes} process(es) x {accumulation} "
            "gradient-accumulation step(s)",
        )

    base_lr = defaults.get("learning_rate", 1e-6)  # 1e-6 is TRL's own default
    learning_rate = hp.learning_rate or base_lr * (hp.learning_rate_multiplier or 1.0)

    grpo: dict[str, Any] = {k: v for k, v in defaults.items() if k != "learning_rate"}
    grpo.update(
        learning_rate=learning_rate,
        num_generations=generations,
        per_device_train_batch_size=completions // per_step,
        logging_steps=1,  # one metrics event per step; TRL averages over the window otherwise
        save_strategy="steps",
        save_steps=hp.eval_interval or DEFAULT_SAVE_STEPS,
        save_total_limit=None,  # rotation would delete folders our checkpoint events point at
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    if hp.max_completion_tokens is not None:
        grpo["max_completion_length"] = hp.max_completion_tokens
    elif tiny and data is not None and data.answer_tokens:
        length = min(data.answer_tokens, TINY_MAX_COMPLETION)
        grpo["max_completion_length"] = length
        where = ", ".join(data.answer_fields)
        reasons["max_completion_length"] = (
            f"the longest reference answer ({where}) is {data.answer_tokens} token(s); "
            "longer completions only add noise to learn past"
        )
    if hp.max_steps is not None:
        grpo["max_steps"] = hp.max_steps
    elif hp.epochs is None and tiny and data is not None:
        steps_per_epoch = -(-train_rows // prompts)
        epochs = max(1, -(-TINY_TARGET_STEPS // steps_per_epoch))
        grpo["num_train_epochs"] = epochs
        reasons["num_train_epochs"] = (
            f"{epochs} x {steps_per_epoch} steps reaches the ~{TINY_TARGET_STEPS} steps "
            "the tiny model needs"
        )
    else:
        grpo["num_train_epochs"] = hp.epochs or 1
    if hp.seed is not None:
        grpo["seed"] = hp.seed
        grpo["data_seed"] = hp.seed

    if has_validation:
        eval_samples = hp.eval_samples or DEFAULT_EVAL_SAMPLES
        # TRL wants the eval batch to hold whole groups of num_generations_eval completions.
        per_eval = eval_samples * max(1, grpo["per_device_train_batch_size"] // eval_samples)
        grpo.update(
            eval_strategy="steps",
            eval_steps=hp.eval_interval or DEFAULT_EVAL_INTERVAL,
            num_generations_eval=eval_samples,
            per_device_eval_batch_size=per_eval,
        )
    else:
        for name in ("eval_interval", "eval_samples"):
            value = getattr(hp, name)
            if value is not None:
                raise _error(name, value, "unset, or pass a validation set: it sets validation")

    lora = options.pop("lora", None)
    if lora is not None:
        lora = _lora_options(lora)
    if options.get("use_vllm") and importlib.util.find_spec("vllm") is None:
        raise MissingDependencyError("vLLM generation (use_vllm)", package="vllm")
    grpo.update(options)  # provider_options win over the runner's defaults
    for name in list(reasons):
        if name in options:  # provider_options set it after all
            del reasons[name]
    return Plan(
        grpo=grpo,
        lora=lora,
        accelerate=accelerate,
        num_processes=processes,
        grader_guard=grader_guard,
        reasons=reasons,
        kind=model_kind(model, images),
    )


def _check_option_names(options: Mapping[str, Any]) -> None:
    for name in options:
        if name in RLFT_OPTIONS:
            continue
        if name in NEUTRAL_OWNED:
            raise _error(
                f"provider_options.{name}",
                options[name],
                f"unset: use the neutral hyperparameter {NEUTRAL_OWNED[name]} instead",
            )
        if name in RUNNER_OWNED:
            raise _error(f"provider_options.{name}", options[name], "unset: the job folder sets it")
    fields = grpo_config_fields()
    if fields is None:  # TRL's source is not where we expect: the worker's GRPOConfig decides
        return
    for name in options:
        if name not in fields and name not in RLFT_OPTIONS:
            close = difflib.get_close_matches(name, sorted(fields), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise _error(
                f"provider_options.{name}",
                options[name],
                f"a trl.GRPOConfig field, or one of {', '.join(RLFT_OPTIONS)}{hint}",
            )


def _accelerate_options(value: Any) -> AccelerateOptions | None:
    if value is None:
        return None
    try:
        options = AccelerateOptions.model_validate(value)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        known = ", ".join(AccelerateOptions.model_fields)
        raise _error(
            f"provider_options.accelerate.{where}" if where else "provider_options.accelerate",
            first.get("input"),
            f"{first['msg']} (fields: {known})",
        ) from None
    if options.config_file is not None:
        path = resolve_accelerate_config(options.config_file)
        options = options.model_copy(update={"config_file": str(path)})
    return options


def _grader_guard_options(value: Any) -> GraderGuardOptions | None:
    if value is False:
        return None
    if value is True:
        return GraderGuardOptions()
    try:
        return GraderGuardOptions.model_validate(value)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise _error(
            f"provider_options.grader_guard.{where}" if where else "provider_options.grader_guard",
            first.get("input"),
            f"{first['msg']} (false, or a table with threshold = 0-1 and steps >= 1)",
        ) from None


def resolve_accelerate_config(value: str) -> Path:
    """A YAML path, or the name of a config TRL ships (``trl/accelerate_configs/<name>.yaml``)."""
    path = Path(value).expanduser()
    if path.is_file():
        return path.resolve()
    trl_dir = _trl_dir()
    shipped = trl_dir / "accelerate_configs" if trl_dir is not None else None
    if shipped is not None and (shipped / f"{value}.yaml").is_file():
        return shipped / f"{value}.yaml"
    names = sorted(p.stem for p in shipped.glob("*.yaml")) if shipped and shipped.is_dir() else []
    raise _error(
        "provider_options.accelerate.config_file",
        value,
        "an existing YAML file" + (f" or one of TRL's: {', '.join(names)}" if names else ""),
    )


def _num_processes(options: AccelerateOptions | None) -> int:
    if options is None:
        return 1
    if options.num_processes is not None:
        return options.num_processes
    if options.config_file is not None:
        try:
            config = yaml.safe_load(Path(options.config_file).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            problem = str(exc).splitlines()[0]
            raise _error(
                "provider_options.accelerate.config_file",
                options.config_file,
                f"a readable accelerate YAML file (`accelerate config` writes one): {problem}",
            ) from None
        if isinstance(config, dict) and isinstance(config.get("num_processes"), int):
            return int(config["num_processes"])
    return 1


def _gpu_count() -> int:
    """GPUs this machine has (0 without torch or CUDA); torch is loaded by the runner anyway."""
    try:
        import torch
    except ImportError:
        return 0
    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def _check_devices(options: AccelerateOptions | None, processes: int) -> None:
    # One process per GPU on one machine. Without GPUs, processes run on the CPU (gloo), where
    # more processes than cores is slow but valid, so only a GPU machine has a limit to check.
    if options is None or processes <= 1 or (options.num_machines or 1) > 1:
        return
    gpus = _gpu_count()
    if 0 < gpus < processes:
        raise _error(
            "provider_options.accelerate.num_processes",
            processes,
            f"at most {gpus}, the GPUs this machine has (one process per GPU); "
            "or add more machines with num_machines",
        )


def _lora_options(value: Any) -> dict[str, Any]:
    if value is True:
        value = {}
    if not isinstance(value, dict):
        raise _error("provider_options.lora", value, "true, or a table of peft.LoraConfig fields")
    if importlib.util.find_spec("peft") is None:
        raise MissingDependencyError("LoRA training", package="peft", extra="lora")
    options: dict[str, Any] = {"r": 16, "lora_alpha": 32, "target_modules": "all-linear"}
    options.update(value)
    return options


# accelerate launch flags that pick a multi-process launcher themselves.
_LAUNCHER_FLAGS = ("--multi_gpu", "--use_deepspeed", "--use_fsdp", "--use_megatron_lm", "--tpu")


def needs_multi_process_flag(accelerate: AccelerateOptions) -> bool:
    """True when ``--multi_gpu`` must be added for ``num_processes`` > 1 to start them all.

    Without a config file or a launcher flag, ``accelerate launch`` starts ONE process whatever
    ``--num_processes`` says. ``--multi_gpu`` is its torchrun launcher: on a machine without
    GPUs each process trains on the CPU and they all-reduce over gloo (DDP), so the name is
    misleading but the flag is right on the CPU too (``--cpu`` would start one process).
    """
    if (accelerate.num_processes or 1) <= 1 or accelerate.config_file is not None:
        return False
    given = {arg.split("=", 1)[0] for arg in accelerate.extra_args}
    return not given & {*_LAUNCHER_FLAGS, "--cpu", "--config_file"}


def worker_command(python: str, job_dir: Path, accelerate: AccelerateOptions | None) -> list[str]:
    """The command the launcher runs: the worker module, directly or under ``accelerate launch``.

    ``accelerate launch -m`` starts one worker per process; each reads the same job folder and
    only the main process writes events (see ``_worker``).
    """
    worker = ["-m", WORKER_MODULE, str(job_dir)]
    if accelerate is None:
        return [python, *worker]
    flags: list[str] = []
    for name in (
        "config_file",
        "num_processes",
        "num_machines",
        "machine_rank",
        "main_process_ip",
        "main_process_port",
        "mixed_precision",
    ):
        value = getattr(accelerate, name)
        if value is not None:
            flags += [f"--{name}", str(value)]
    if needs_multi_process_flag(accelerate):
        flags.append("--multi_gpu")
    return [python, "-m", "accelerate.commands.launch", *flags, *accelerate.extra_args, *worker]


# --- GRPOConfig's fields, read from TRL's source without importing it ---------------------------

# The dataclass chain of GRPOConfig in trl 1.x: its own fields, TRL's base config, and
# transformers' TrainingArguments. Checked against dataclasses.fields(GRPOConfig) in the tests.
_CONFIG_CHAIN = (
    ("trl", "trainer/grpo_config.py", "GRPOConfig"),
    ("trl", "trainer/base_config.py", "_BaseConfig"),
    ("transformers", "training_args.py", "TrainingArguments"),
)


def _package_dir(name: str) -> Path | None:
    # find_spec on a top-level name does not import it (a dotted name would import the parent).
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _trl_dir() -> Path | None:
    return _package_dir("trl")


@functools.lru_cache(maxsize=1)
def grpo_config_fields() -> frozenset[str] | None:
    """The names ``trl.GRPOConfig`` accepts, or ``None`` when TRL's source can't be read."""
    names: set[str] = set()
    for package, relative, class_name in _CONFIG_CHAIN:
        root = _package_dir(package)
        if root is None:
            return None
        try:
            tree = ast.parse((root / relative).read_text(encoding="utf-8"))
        except (OSError, SyntaxError):
            return None
        found = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name]
        if not found:
            return None
        names.update(
            node.target.id
            for node in found[0].body
            if isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and "ClassVar" not in ast.unparse(node.annotation)
        )
    return frozenset(names)


def default_python() -> str:
    """The interpreter the caller runs, which has rlft installed."""
    return sys.executable
