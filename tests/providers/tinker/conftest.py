"""Helpers for the Tinker backend's tests: the tiny model, a FakeTinkerServer, the provider.

The server is rlft's own ``FakeTinkerServer`` (the official ``tinker`` SDK 0.38 as the client,
a real tiny torch model behind it). The model is ``rlft.tiny`` built from the quickstart's rows,
with its output head untied from the embeddings: the server gives a tied head no LoRA, and
Tinker's ``train_unembed`` adapter on the head is what lets a model this small learn the
quickstart's labels in a few dozen steps.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# The job helpers of every rlft.workers backend, shared with the local runner's tests.
from tests.local.conftest import create as create
from tests.local.conftest import wait_until as wait_until

import rlft
from rlft._models import Hyperparameters, JobEvent
from rlft._spec import JobSpec
from rlft_providers.tinker._provider import TinkerProvider
from rlft_providers.tinker._settings import TinkerSettings

ROOT = Path(__file__).resolve().parents[3]
QUICKSTART = ROOT / "examples" / "quickstart"
SECRET = "tml-CANARY-tinker-test-key-0123456789"


def quickstart_spec(valid_rows: int = 16, **hyperparameters: Any) -> JobSpec:
    """The quickstart's data and grader on the served tiny model, hyperparameters as given."""
    spec = rlft.load_job_file(QUICKSTART / "job.toml")
    validation = spec.validation
    if validation is not None:
        validation = validation[:valid_rows]
    return spec.model_copy(
        update={
            "model": "tiny",
            "validation": validation,
            "hyperparameters": Hyperparameters(**hyperparameters),
        }
    )


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``rlft.tiny`` built from the quickstart's rows, its head untied from the embeddings."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM

    from rlft.datasets import to_trl_rows
    from rlft.tiny import build_tiny_model

    spec = rlft.load_job_file(QUICKSTART / "job.toml")
    rows = to_trl_rows(spec.train) + (to_trl_rows(spec.validation) if spec.validation else [])
    folder = tmp_path_factory.mktemp("tiny-model")
    model, _, _ = build_tiny_model(rows, folder=folder, seed=1)
    model = AutoModelForCausalLM.from_pretrained(folder)
    model.config.tie_word_embeddings = False
    model.lm_head.weight = torch.nn.Parameter(model.get_input_embeddings().weight.detach().clone())
    model.save_pretrained(folder)
    return folder


@pytest.fixture
def server(tiny_model: Path, tmp_path: Path) -> Iterator[Any]:
    from rlft.testing import FakeTinkerServer

    with FakeTinkerServer(
        models={"tiny": tiny_model}, root=tmp_path / "service", api_key=SECRET, max_lora_rank=64
    ) as fake:
        yield fake


def make_provider(home: Path, server: Any, tiny_model: Path, **settings: Any) -> TinkerProvider:
    return TinkerProvider(
        settings=TinkerSettings(
            home=home,
            base_url=server.url,
            api_key=SECRET,
            tokenizer=str(tiny_model),
            **settings,
        )
    )


@pytest.fixture
def provider(tmp_path: Path, server: Any, tiny_model: Path) -> TinkerProvider:
    return make_provider(tmp_path / "home", server, tiny_model)


def rewards(events: list[JobEvent]) -> list[float]:
    return [
        e.metrics.train_reward_mean
        for e in events
        if e.kind == "metrics" and e.metrics and e.metrics.train_reward_mean is not None
    ]


def metric_steps(events: list[JobEvent]) -> list[int]:
    return [e.metrics.step for e in events if e.kind == "metrics" and e.metrics and e.metrics.step]
