"""The torch side of ``FakeTinkerServer``: LoRA training runs and samplers over a tiny HF model.

Everything here runs under the server's one compute lock, on CPU. A training run is a ``peft``
LoRA model over a private copy of the base model plus an AdamW optimizer (Tinker documents its
Adam as ``torch.optim.AdamW``); ``forward_backward`` accumulates gradients until ``optim_step``
applies and clears them, as Tinker's do. Samplers serve snapshots of a run's LoRA weights.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "Adapter",
    "BaseModel",
    "Run",
    "UserError",
    "generate",
    "load_checkpoint",
    "save_checkpoint",
]

# Module names LoRA attaches to, per Tinker's switches (Llama/Qwen naming).
ATTN_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_MODULES = ("gate_proj", "up_proj", "down_proj")
UNEMBED_MODULES = ("lm_head",)
LORA_ALPHA = 32


class UserError(Exception):
    """A request the caller must fix; the message says how (a Tinker ``user`` error)."""


class BaseModel:
    """One served base model: an HF causal-LM folder, loaded once and copied per run."""

    def __init__(self, name: str, folder: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.name = name
        self.folder = folder
        self.model: Any = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        self.model.train(False)
        self.tokenizer: Any = AutoTokenizer.from_pretrained(folder)
        config = self.model.config
        self.vocab_size = int(config.vocab_size)
        self.max_context = int(getattr(config, "max_position_embeddings", 2048))
        eos = getattr(config, "eos_token_id", None)
        self.eos_ids: set[int] = set(
            eos if isinstance(eos, list) else [eos] if eos is not None else []
        )
        names = {n.rsplit(".", 1)[-1] for n, _ in self.model.named_modules()}
        self.module_names = names

    def targets(self, lora: Mapping[str, Any]) -> list[str]:
        """The module names LoRA wraps for Tinker's ``train_attn/mlp/unembed`` switches.

        A tied unembedding (the tiny model's) gets its own LoRA too: adapters are never
        merged into the base weights, so the input embeddings stay as they are.
        """
        wanted: list[str] = []
        if lora.get("train_attn", True):
            wanted += ATTN_MODULES
        if lora.get("train_mlp", True):
            wanted += MLP_MODULES
        if lora.get("train_unembed", True):
            wanted += UNEMBED_MODULES
        found = [name for name in wanted if name in self.module_names]
        if not found:
            raise UserError(
                f"no LoRA target modules found in {self.name!r} for {dict(lora)}; "
                "enable train_attn or train_mlp"
            )
        return found

    def lora_model(self, lora: Mapping[str, Any]) -> Any:
        """A fresh copy of the base model with a zero-initialised LoRA of ``lora['rank']``."""
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(
            r=int(lora["rank"]),
            lora_alpha=LORA_ALPHA,
            lora_dropout=0.0,
            target_modules=self.targets(lora),
            bias="none",
        )
        seed = lora.get("seed")
        with warnings.catch_warnings(), torch.random.fork_rng():  # keep the caller's RNG as is
            if seed is not None:
                torch.manual_seed(int(seed))
            # Adapters here are never merged, so a LoRA on a tied unembedding is safe.
            warnings.filterwarnings("ignore", message=".*tie_word_embeddings.*")
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
            model = get_peft_model(copy.deepcopy(self.model), config)
        model.eval()  # no dropout anywhere: training steps stay deterministic
        return model


Adapter = dict[str, torch.Tensor]
"""LoRA weights by parameter name (only the trainable ones)."""


def adapter_of(model: Any) -> Adapter:
    """A detached copy of a LoRA model's trainable weights."""
    return {
        name: param.detach().clone()
        for name, param in model.named_parameters()
        if param.requires_grad
    }


def load_adapter(model: Any, adapter: Adapter) -> None:
    """Copy ``adapter`` into ``model``'s trainable weights; names and shapes must match."""
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    if set(params) != set(adapter):
        raise UserError(
            "the checkpoint's LoRA layout differs from this training run's "
            "(another rank or other train_* switches); load it with "
            "create_training_client_from_state instead"
        )
    with torch.no_grad():
        for name, param in params.items():
            if param.shape != adapter[name].shape:
                raise UserError(
                    f"checkpoint tensor {name} has shape {tuple(adapter[name].shape)}, the run "
                    f"has {tuple(param.shape)}; load it with create_training_client_from_state"
                )
            param.copy_(adapter[name])


@dataclass
class Run:
    """One training run (a Tinker ``model_id``): LoRA weights, Adam state, step counters.

    Attributes:
        step: Optimizer steps behind these weights, carried through ``save_state`` and
            ``load_state`` (the lineage counter).
        applied: Optimizer steps this server applied to the run (never a replayed request).
    """

    run_id: str
    base: BaseModel
    lora: dict[str, Any]
    model: Any
    optimizer: torch.optim.AdamW | None = None
    step: int = 0
    applied: int = 0
    user_metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def rank(self) -> int:
        return int(self.lora["rank"])

    def _optimizer(self) -> torch.optim.AdamW:
        if self.optimizer is None:
            params = [p for p in self.model.parameters() if p.requires_grad]
            self.optimizer = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.95), eps=1e-12)
        return self.optimizer

    def forward_backward(
        self, data: Sequence[Datum], loss_fn: str, *, forward_only: bool
    ) -> tuple[list[dict[str, list[float]]], dict[str, float]]:
        """Run the loss over ``data``; unless ``forward_only``, accumulate its gradients.

        Returns per-datum outputs (``logprobs``, ``elementwise_loss``) and metrics
        (``loss:sum``).
        """
        if loss_fn not in LOSSES:
            raise UserError(
                f"loss_fn {loss_fn!r} is not supported by this server; use one of "
                f"{', '.join(sorted(LOSSES))}"
            )
        required = LOSSES[loss_fn]
        outputs: list[dict[str, list[float]]] = []
        total = torch.zeros(())
        with torch.set_grad_enabled(not forward_only):
            for index, datum in enumerate(data):
                missing = [name for name in required if name not in datum.inputs]
                if missing:
                    raise UserError(
                        f"datum {index}: loss_fn {loss_fn!r} needs loss_fn_inputs "
                        f"{', '.join(required)}; missing {', '.join(missing)}"
                    )
                logprobs = self._target_logprobs(index, datum)
                elementwise = _loss(loss_fn, datum, logprobs, index)
                total = total + elementwise.sum()
                outputs.append(
                    {
                        "logprobs": logprobs.detach().tolist(),
                        "elementwise_loss": elementwise.detach().tolist(),
                    }
                )
            if not forward_only and total.requires_grad:
                total.backward()  # type: ignore[no-untyped-call]
        return outputs, {"loss:sum": float(total.detach())}

    def _target_logprobs(self, index: int, datum: Datum) -> torch.Tensor:
        tokens = datum.tokens
        targets = datum.inputs["target_tokens"].to(torch.long).reshape(-1)
        if not tokens:
            raise UserError(f"datum {index}: model_input is empty")
        if targets.numel() != len(tokens):
            raise UserError(
                f"datum {index}: loss_fn_inputs['target_tokens'] has {targets.numel()} tokens but "
                f"model_input has {len(tokens)}; they must be equal (target i is the token "
                "after input i)"
            )
        if len(tokens) > self.base.max_context:
            raise UserError(
                f"datum {index}: {len(tokens)} tokens exceed the model's context of "
                f"{self.base.max_context}; shorten the datum"
            )
        bad = [t for t in [*tokens, *targets.tolist()] if not 0 <= t < self.base.vocab_size]
        if bad:
            raise UserError(
                f"datum {index}: token id {bad[0]} is outside the vocabulary "
                f"(0..{self.base.vocab_size - 1}); tokenize with this model's tokenizer"
            )
        ids = torch.tensor([tokens], dtype=torch.long)
        logits = self.model(input_ids=ids).logits[0].float()
        return torch.log_softmax(logits, dim=-1).gather(1, targets[:, None])[:, 0]

    def optim_step(self, params: Mapping[str, float]) -> dict[str, float]:
        """Apply one AdamW step with Tinker's ``AdamParams`` and clear the gradients."""
        optimizer = self._optimizer()
        for group in optimizer.param_groups:
            group["lr"] = float(params.get("learning_rate", 1e-4))
            group["betas"] = (float(params.get("beta1", 0.9)), float(params.get("beta2", 0.95)))
            group["eps"] = float(params.get("eps", 1e-12))
            group["weight_decay"] = float(params.get("weight_decay", 0.0))
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        grads = [p.grad for p in trainable if p.grad is not None]
        norm = (
            float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])))
            if grads
            else 0.0
        )
        clip = float(params.get("grad_clip_norm", 0.0))
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(trainable, clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.applied += 1
        return {"step": float(self.step), "grad_norm": norm if math.isfinite(norm) else -1.0}


@dataclass
class Datum:
    """One decoded ``types.Datum``: input tokens and named loss tensors."""

    tokens: list[int]
    inputs: dict[str, torch.Tensor]


def _loss(loss_fn: str, datum: Datum, logprobs: torch.Tensor, index: int) -> torch.Tensor:
    n = logprobs.shape[0]

    def field_of(name: str, default: float | None = None) -> torch.Tensor:
        if name not in datum.inputs and default is not None:
            return torch.full((n,), default)
        value = datum.inputs[name].to(torch.float32).reshape(-1)
        if value.numel() != n:
            raise UserError(
                f"datum {index}: loss_fn_inputs[{name!r}] has {value.numel()} values for "
                f"{n} target tokens; give one per target token"
            )
        return value

    if loss_fn == "cross_entropy":
        return -logprobs * field_of("weights", 1.0)
    # importance_sampling (Tinker's docs): -(exp(logp - sampling_logp) * advantages) per token.
    ratio = torch.exp(logprobs - field_of("logprobs"))
    return -(ratio * field_of("advantages"))


LOSSES: dict[str, tuple[str, ...]] = {
    "cross_entropy": ("target_tokens",),
    "importance_sampling": ("target_tokens", "logprobs", "advantages"),
}


@dataclass
class Sampled:
    tokens: list[int]
    logprobs: list[float]
    stop_reason: str  # "stop" | "length"


def generate(
    model: Any,
    base: BaseModel,
    prompt: list[int],
    num_samples: int,
    params: Mapping[str, Any],
    generator: torch.Generator,
) -> list[Sampled]:
    """Sample ``num_samples`` continuations of ``prompt``, with per-token logprobs.

    Logprobs are the model's own (``log_softmax`` of the logits, before temperature, top-k or
    top-p), so on-policy importance ratios start at 1. The stop token or string that ended a
    sequence is part of its tokens.
    """
    if not prompt:
        raise UserError("the prompt is empty; give at least one token")
    bad = [t for t in prompt if not 0 <= t < base.vocab_size]
    if bad:
        raise UserError(
            f"prompt token id {bad[0]} is outside the vocabulary (0..{base.vocab_size - 1}); "
            "tokenize with this model's tokenizer"
        )
    room = base.max_context - len(prompt)
    if room <= 0:
        raise UserError(
            f"the prompt has {len(prompt)} tokens, the model's context is {base.max_context}; "
            "shorten the prompt"
        )
    max_tokens = params.get("max_tokens")
    limit = room if max_tokens is None else min(int(max_tokens), room)
    if limit < 1:
        raise UserError("sampling_params.max_tokens must be at least 1")
    stop_ids, stop_texts = _stops(params.get("stop"), base)
    temperature = float(params.get("temperature", 1.0))
    top_k = int(params.get("top_k", -1))
    top_p = float(params.get("top_p", 1.0))

    ids = torch.tensor([prompt] * num_samples, dtype=torch.long)
    results = [Sampled([], [], "length") for _ in range(num_samples)]
    done = [False] * num_samples
    cache: Any = None
    with torch.no_grad():
        for _ in range(limit):
            # The KV cache feeds one new token per step (no padding: all rows share a length).
            out = model(input_ids=ids, cache=cache, use_cache=True)
            cache = out.cache
            logits = out.logits[:, -1, :].float()
            logp = torch.log_softmax(logits, dim=-1)
            choice = _choose(logits, temperature, top_k, top_p, generator)
            for row in range(num_samples):
                if done[row]:
                    continue
                token = int(choice[row])
                sampled = results[row]
                sampled.tokens.append(token)
                sampled.logprobs.append(float(logp[row, token]))
                if token in stop_ids or (
                    stop_texts and _ends_with_stop(base, sampled.tokens, stop_texts)
                ):
                    sampled.stop_reason = "stop"
                    done[row] = True
            if all(done):
                break
            ids = choice[:, None]
    return results


def _stops(stop: Any, base: BaseModel) -> tuple[set[int], list[str]]:
    """Tinker's ``stop``: None keeps EOS, ``[]`` disables every stop, else ids or strings."""
    if stop is None:
        return set(base.eos_ids), []
    if isinstance(stop, str):
        return set(), [stop]
    items = list(stop)
    if all(isinstance(item, int) for item in items):
        return {int(item) for item in items}, []
    return set(), [str(item) for item in items]


def _ends_with_stop(base: BaseModel, tokens: list[int], stops: list[str]) -> bool:
    text = base.tokenizer.decode(tokens)
    return any(stop in text for stop in stops)


def _choose(
    logits: torch.Tensor, temperature: float, top_k: int, top_p: float, generator: torch.Generator
) -> torch.Tensor:
    if temperature <= 0:
        return logits.argmax(dim=-1)
    scaled = logits / temperature
    if 0 < top_k < scaled.shape[-1]:
        kth = torch.topk(scaled, top_k, dim=-1).values[:, -1:]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    if top_p < 1.0:
        order = torch.sort(scaled, descending=True, dim=-1)
        probs = torch.softmax(order.values, dim=-1)
        beyond = probs.cumsum(dim=-1) - probs > top_p
        masked = order.values.masked_fill(beyond, float("-inf"))
        scaled = torch.full_like(scaled, float("-inf")).scatter(1, order.indices, masked)
    probs = torch.softmax(scaled, dim=-1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


def prompt_logprobs(model: Any, prompt: list[int]) -> list[float]:
    """``log p(prompt[i] | prompt[:i])`` for i >= 1, NaN for the first token (Tinker's wire)."""
    with torch.no_grad():
        ids = torch.tensor([prompt], dtype=torch.long)
        logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
    values = [float("nan")]
    values += [float(logp[i - 1, prompt[i]]) for i in range(1, len(prompt))]
    return values


# --- checkpoints on disk ---------------------------------------------------------------------


def save_checkpoint(
    folder: Path, *, run: Run, adapter: Adapter, with_optimizer: bool, kind: str
) -> None:
    """Write ``adapter`` (and the optimizer state) with a ``meta.json`` into ``folder``."""
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save(adapter, tmp / "adapter.pt")
    if with_optimizer and run.optimizer is not None:
        torch.save(run.optimizer.state_dict(), tmp / "optimizer.pt")
    meta = {
        "kind": kind,
        "run_id": run.run_id,
        "base_model": run.base.name,
        "lora": run.lora,
        "step": run.step,
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)  # a crash mid-save never leaves a half-written checkpoint


def load_checkpoint(folder: Path) -> tuple[dict[str, Any], Adapter, dict[str, Any] | None]:
    """``(meta, adapter, optimizer state or None)`` from a folder ``save_checkpoint`` wrote."""
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    adapter = torch.load(folder / "adapter.pt", weights_only=True)
    optim_path = folder / "optimizer.pt"
    optim = torch.load(optim_path, weights_only=True) if optim_path.exists() else None
    return meta, adapter, optim
