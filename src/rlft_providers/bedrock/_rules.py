"""Bedrock's rules, checked before anything is uploaded: models, hyperparameters, names, tags.

Pure and import-light. botocore 1.44.8 checks only minimums and types, and moto checks nothing,
so the maxima, enums and patterns below are ours to enforce (reference/bedrock.md §2.2). Ranges
come from the botocore service model ``bedrock/2023-04-20`` shape ``RFTHyperParameters``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rlft.exceptions import CapabilityError, HyperparameterError, UsageError
from rlft.provider import Hyperparameters

__all__ = [
    "DEFAULT_MODEL",
    "NOVA_RFT_MODELS",
    "OPEN_WEIGHT_MODELS",
    "check_labels",
    "check_model",
    "client_token",
    "deployment_name",
    "inference_id",
    "is_open_weight",
    "job_names",
    "rft_hyperparameters",
]

PROVIDER = "bedrock"

DEFAULT_MODEL = "amazon.nova-2-lite-v1:0:256k"
"""Nova 2 Lite, the one native RFT base model (us-east-1).
https://docs.aws.amazon.com/bedrock/latest/userguide/custom-model-fine-tuning.html"""

NOVA_RFT_MODELS = frozenset({DEFAULT_MODEL})
OPEN_WEIGHT_MODELS = frozenset({"openai.gpt-oss-20b", "qwen.qwen3-32b-v1:0"})
"""RFT through the OpenAI-compatible endpoint (reference/bedrock.md §1, §5)."""
_OPEN_WEIGHT_PREFIXES = ("openai.gpt-oss", "qwen.qwen3")

# Fine-tuning ids name a context-window variant (":256k"); inference calls the model through a
# cross-region inference profile instead: "us." or "global." + the id without the variant
# (Nova inference docs; reference/bedrock.md §10.5: on-demand calls of the bare id fail).
_TRAINING_VARIANT = re.compile(r"^(amazon\.nova-[a-z0-9-]+-v\d+:\d+):\d+k$")
_PROFILE_SCOPES = ("us.", "eu.", "apac.", "us-gov.", "global.")

_FOUNDATION_ARN = re.compile(r"^arn:aws(-[^:]+)?:bedrock:[a-z0-9-]{1,20}::foundation-model/(.+)$")
_CUSTOM_ARN = re.compile(r"^arn:aws(-[^:]+)?:bedrock:[a-z0-9-]{1,20}:[0-9]{12}:custom-model/.+$")


@dataclass(frozen=True)
class _Range:
    api_name: str
    kind: type
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.choices:
            return " | ".join(self.choices)
        if self.low is None:
            return f"a positive {self.kind.__name__}"
        return f"{self.low:g} to {self.high:g}"

    def check(self, name: str, value: Any) -> Any:
        ok: bool
        if self.choices:
            ok = value in self.choices
        elif self.kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and not self.choices:
            low = self.low if self.low is not None else 1
            ok = low <= value and (self.high is None or value <= self.high)
        if not ok:
            raise HyperparameterError(
                provider=PROVIDER, name=name, value=value, allowed=self.describe()
            )
        return value


# RFTHyperParameters in botocore 1.44.8 (min/max from the service model; no max on token limits).
RFT_FIELDS: dict[str, _Range] = {
    "epochCount": _Range("epochCount", int, 1, 50),
    "batchSize": _Range("batchSize", int, 16, 512),
    "learningRate": _Range("learningRate", float, 1e-7, 1e-3),
    "maxPromptLength": _Range("maxPromptLength", int),
    "trainingSamplePerPrompt": _Range("trainingSamplePerPrompt", int, 2, 16),
    "inferenceMaxTokens": _Range("inferenceMaxTokens", int),
    "reasoningEffort": _Range("reasoningEffort", str, choices=("low", "medium", "high")),
    "evalInterval": _Range("evalInterval", int, 1, 100),
}

# Neutral name -> RFTHyperParameters field.
_NEUTRAL: dict[str, str] = {
    "epochs": "epochCount",
    "batch_size": "batchSize",
    "learning_rate": "learningRate",
    "samples_per_prompt": "trainingSamplePerPrompt",
    "max_completion_tokens": "inferenceMaxTokens",
    "eval_interval": "evalInterval",
    "reasoning_effort": "reasoningEffort",
}

# Neutral settings Nova RFT has no field for, and what to do instead.
_UNSUPPORTED: dict[str, str] = {
    "learning_rate_multiplier": "not supported on Nova RFT; set learning_rate (1e-7 to 1e-3)",
    "eval_samples": "not supported on Nova RFT (no setting for samples per validation prompt)",
    "compute_multiplier": "not supported on Nova RFT",
    "seed": "not supported on Nova RFT (the API takes no seed)",
    "max_steps": "not supported on Nova RFT; bound training with epochs",
}


def rft_hyperparameters(hp: Hyperparameters) -> dict[str, Any]:
    """Map neutral hyperparameters to ``rftConfig.hyperParameters``, range-checked.

    ``provider_options`` may set any ``RFTHyperParameters`` field by its API name
    (``{"maxPromptLength": 4000}``); it is checked like the rest.

    Raises:
        HyperparameterError: A value out of range, a setting Nova RFT lacks, an unknown option.
    """
    out: dict[str, Any] = {}
    for name, message in _UNSUPPORTED.items():
        value = getattr(hp, name)
        if value is not None:
            raise HyperparameterError(provider=PROVIDER, name=name, value=value, allowed=message)
    for neutral, api_name in _NEUTRAL.items():
        value = getattr(hp, neutral)
        if value is None or (neutral == "reasoning_effort" and value == "default"):
            continue  # the service default
        out[api_name] = RFT_FIELDS[api_name].check(neutral, value)
    for key, value in hp.provider_options.items():
        if key not in RFT_FIELDS:
            raise HyperparameterError(
                provider=PROVIDER,
                name=f"provider_options.{key}",
                value=value,
                allowed="one of " + ", ".join(sorted(RFT_FIELDS)),
            )
        if key in out:
            raise HyperparameterError(
                provider=PROVIDER,
                name=f"provider_options.{key}",
                value=value,
                allowed=f"unset: it repeats a neutral setting ({out[key]!r}); keep one",
            )
        out[key] = RFT_FIELDS[key].check(f"provider_options.{key}", value)
    return out


def is_open_weight(model: str | None) -> bool:
    """Whether a model trains on the OpenAI-compatible endpoint (gpt-oss, Qwen3): provider
    ``bedrock-open-weight``."""
    return model is not None and model.startswith(_OPEN_WEIGHT_PREFIXES)


def check_model(model: str | None, *, allow_unknown: bool = False) -> str:
    """Return the Nova base model identifier to send, or raise naming the ones that work.

    Accepts a known model id, its foundation-model ARN, or a custom-model ARN (iterative
    training on an earlier RFT result). ``None`` picks Nova 2 Lite.
    """
    if model is None:
        return DEFAULT_MODEL
    if _CUSTOM_ARN.match(model):
        return model
    arn = _FOUNDATION_ARN.match(model)
    model_id = arn.group(2) if arn else model
    if model_id in NOVA_RFT_MODELS or allow_unknown:
        return model
    known = ", ".join(sorted(NOVA_RFT_MODELS))
    raise UsageError(
        f"model {model!r} does not support reinforcement fine-tuning on Bedrock as far as rlft "
        f"knows; use {known}, or a custom-model ARN from an earlier job (open-weight models: "
        "provider 'bedrock-open-weight'). If AWS added the model since, set [bedrock] "
        "allow_unknown_models = true"
    )


def inference_id(model: str | None, *, scope: str = "us", override: str | None = None) -> str:
    """The model id Converse takes for sampling the base model ``model`` (preflight).

    ``amazon.nova-2-lite-v1:0:256k`` (the fine-tuning id, or its foundation-model ARN) becomes
    the inference profile ``<scope>.amazon.nova-2-lite-v1:0``; ids that already are profiles,
    and other ids, are used as they are.

    Args:
        model: The job's base model (``None``: Nova 2 Lite).
        scope: The profile's prefix: ``"us"`` or ``"global"`` (``BedrockSettings.inference_scope``).
        override: ``BedrockSettings.inference_model``: used as given when set.

    Raises:
        CapabilityError: ``model`` is a custom-model ARN, which is invoked only through a
            deployment.
    """
    if override:
        return override
    model = model or DEFAULT_MODEL
    if _CUSTOM_ARN.match(model):
        raise CapabilityError(
            provider=PROVIDER,
            operation="inference",
            reason=f"custom model {model} can only be called through a deployment: deploy it "
            "(`rlft deploy`) and set [bedrock] inference_model to the deployment ARN",
        )
    arn = _FOUNDATION_ARN.match(model)
    model_id = arn.group(2) if arn else model
    if model_id.startswith(_PROFILE_SCOPES):
        return model_id
    variant = _TRAINING_VARIANT.match(model_id)
    return f"{scope}.{variant.group(1)}" if variant else model_id


_TAG = re.compile(r"^[a-zA-Z0-9\s._:/=+@-]*$")


def check_labels(labels: Mapping[str, str]) -> list[dict[str, str]]:
    """Labels as Bedrock ``jobTags``: keys 1-128 and values 0-256 chars of ``[a-zA-Z0-9 ._:/=+@-]``.

    Raises:
        UsageError: A label Bedrock would refuse, named.
    """
    if len(labels) > 200:
        raise UsageError(f"{len(labels)} labels; Bedrock takes at most 200 tags per job")
    tags = []
    for key, value in labels.items():
        if not (1 <= len(key) <= 128 and _TAG.match(key)) or key.startswith("aws:"):
            raise UsageError(
                f"label key {key!r} is not a valid Bedrock tag key: 1-128 characters of letters, "
                "digits, spaces and ._:/=+@-, not starting with 'aws:'"
            )
        if not (len(value) <= 256 and _TAG.match(value)):
            raise UsageError(
                f"label {key}={value!r} is not a valid Bedrock tag value: up to 256 characters "
                "of letters, digits, spaces and ._:/=+@-"
            )
        tags.append({"key": key, "value": value})
    return tags


def _digest(idempotency_key: str) -> str:
    return hashlib.sha256(idempotency_key.encode()).hexdigest()


def client_token(idempotency_key: str) -> str:
    """The ``clientRequestToken``: same spec and nonce, same token, so a retried create is
    ignored by Bedrock instead of starting a second paid job."""
    return f"rlft-{_digest(idempotency_key)[:59]}"  # 64 chars, [a-zA-Z0-9-]


def _slug(text: str, *, limit: int) -> str:
    slug = re.sub(r"[^a-zA-Z0-9]+", "-", text).strip("-").lower()
    return slug[:limit].strip("-") or "rlft"


def job_names(name: str | None, idempotency_key: str) -> tuple[str, str]:
    """``(jobName, customModelName)``: readable, deterministic per create, valid for both patterns.

    A retried create reuses both, so a duplicate surfaces as a conflict we can resolve to the job
    that already exists.
    """
    base = _slug(name or "rlft", limit=40)
    suffix = _digest(idempotency_key)[:12]
    return f"{base}-{suffix}", f"{base}-model-{suffix}"


_DEPLOYMENT_NAME = re.compile(r"^([0-9a-zA-Z][_-]?){1,63}$")


def deployment_name(name: str | None, model_arn: str, *, hint: str | None = None) -> str:
    """The ``modelDeploymentName``: ``name`` as given (checked), else derived from ``hint``
    (the output model name) and the model ARN, unique per model.

    Raises:
        UsageError: ``name`` breaks Bedrock's pattern.
    """
    if name is not None:
        if len(name) > 63 or not _DEPLOYMENT_NAME.match(name):
            raise UsageError(
                f"deployment name {name!r} is not valid on Bedrock: 1-63 letters and digits, "
                "single '-' or '_' between them"
            )
        return name
    base = _slug(hint or "rlft", limit=50)
    return f"{base}-{hashlib.sha256(model_arn.encode()).hexdigest()[:8]}"
