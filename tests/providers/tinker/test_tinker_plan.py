"""The neutral hyperparameters map to the Tinker loop's plan and are range-checked locally."""

from __future__ import annotations

import pytest

from rlft.exceptions import HyperparameterError
from rlft.provider import Hyperparameters
from rlft_providers.tinker._plan import plan_training


def plan(**hp):
    options = hp.pop("provider_options", {})
    return plan_training(
        Hyperparameters(**hp, provider_options=options), train_rows=100, has_validation=True
    )


def test_every_neutral_hyperparameter_maps() -> None:
    p = plan(
        max_steps=30,
        batch_size=4,
        samples_per_prompt=6,
        learning_rate=2e-4,
        max_completion_tokens=12,
        eval_interval=10,
        eval_samples=2,
        seed=7,
        provider_options={"lora_rank": 16, "temperature": 0.7, "adam": {"beta2": 0.99}},
    )
    assert (p.total_steps, p.batch_size, p.group_size, p.learning_rate) == (30, 4, 6, 2e-4)
    assert (p.max_tokens, p.eval_interval, p.eval_samples, p.seed) == (12, 10, 2, 7)
    assert (p.lora_rank, p.temperature, p.adam) == (16, 0.7, {"beta2": 0.99})
    assert p.reasons == []


def test_epochs_become_steps_and_defaults_are_named() -> None:
    p = plan(epochs=3, batch_size=8)
    assert p.total_steps == 13 * 3  # ceil(100 / 8) batches per epoch
    assert "samples_per_prompt=8" in p.summary() and "learning_rate=4e-05" in p.summary()


@pytest.mark.parametrize(
    ("hp", "name"),
    [
        ({"provider_options": {"lora_rank": 0}}, "provider_options.lora_rank"),
        ({"provider_options": {"lora_rank": 1024}}, "provider_options.lora_rank"),
        ({"samples_per_prompt": 1}, "samples_per_prompt"),
        ({"learning_rate": 0.5}, "learning_rate"),
        ({"max_steps": 5, "epochs": 2}, "epochs"),
        ({"provider_options": {"temperature": 3.0}}, "provider_options.temperature"),
        ({"provider_options": {"num_generations": 4}}, "provider_options.num_generations"),
        ({"learning_rate_multiplier": 2.0}, "learning_rate_multiplier"),
        ({"provider_options": {"adam": {"momentum": 0.9}}}, "provider_options.adam.momentum"),
    ],
)
def test_out_of_range_values_are_refused_by_name(hp, name) -> None:
    with pytest.raises(HyperparameterError) as info:
        plan(**hp)
    assert info.value.name == name
    assert "tinker" in str(info.value) and "allowed" in str(info.value)


def test_no_validation_set_means_no_evaluation() -> None:
    p = plan_training(Hyperparameters(eval_interval=5), train_rows=10, has_validation=False)
    assert p.eval_interval is None and p.save_every >= 1
