"""What Acme Fine-Tuning is like, declared as data: rlft reads these through the ``ProviderSpec``.

Nothing here imports the provider class or ``httpx``: rlft loads this module with the plugin,
checks every fact then (a malformed one fails with ``PluginLoadError`` naming the field), and
uses them without editing rlft: ``map_status("acme", word)``, ``rlft validate --provider acme``,
``rlft.graders.compile(grader, "acme")`` and ``BudgetGuard`` all read them.
"""

from __future__ import annotations

from rlft.provider import (
    DatasetRules,
    GraderFacts,
    HyperparameterFacts,
    JobStatus,
    Lifecycle,
    Rates,
)

__all__ = ["DATASET", "GRADERS", "HYPERPARAMETERS", "LIFECYCLE", "RATES", "STATUSES"]

# --8<-- [start:statuses]
# Acme's job statuses: OpenAI's words, plus two of its own. Case does not matter; a word that is
# not here and not neutral maps to "running" (keep watching) and stays in job.provider_status.
STATUSES = {
    "validating_files": JobStatus.PENDING,
    "queued": JobStatus.PENDING,
    "warming_up": JobStatus.PENDING,  # Acme's own: GPUs are being reserved
    "running": JobStatus.RUNNING,
    "evaluating": JobStatus.RUNNING,  # Acme's own: the final validation pass
    "succeeded": JobStatus.SUCCEEDED,
    "failed": JobStatus.FAILED,
    "cancelled": JobStatus.CANCELLED,
}
# --8<-- [end:statuses]

# --8<-- [start:dataset]
# Acme trains on single prompts: a system turn and one user turn, text only, at most 10,000 rows.
DATASET = DatasetRules(
    label="Acme RFT",
    roles=frozenset({"system", "user"}),
    role_fixes={
        "assistant": "Acme RFT takes single prompts: drop earlier assistant turns",
        "developer": 'use role "system" for instructions on Acme',
    },
    part_types=frozenset({"text"}),
    single_turn=True,
    max_rows=10_000,
    render="jsonl",  # rows uploaded as they are: OpenAI-style JSONL
    sources={"limits": "https://ft.acme.example/docs/data"},
)
# --8<-- [end:dataset]

# --8<-- [start:graders]
# Acme takes OpenAI's grader JSON, which rlft builds: nothing to write.
GRADERS = GraderFacts(format="openai")
# --8<-- [end:graders]

# --8<-- [start:rates]
# USD per training hour by model prefix ("" is any model): what BudgetGuard estimates with.
RATES = Rates(
    training_per_hour={"": 12.0, "acme-large": 48.0},
    source="https://ft.acme.example/pricing",
)
# --8<-- [end:rates]

# --8<-- [start:hyperparameters]
# Acme takes OpenAI's method.reinforcement.hyperparameters; rlft.openai_compat checks them.
HYPERPARAMETERS = HyperparameterFacts(
    names={"epochs": "n_epochs", "batch_size": "batch_size", "seed": "seed"},
    ranges={"epochs": '"auto" or 1 to 50', "batch_size": '"auto" or 1 to 256'},
    check="rlft.openai_compat:wire_hyperparameters",
    source="https://ft.acme.example/docs/hyperparameters",
)
# --8<-- [end:hyperparameters]

LIFECYCLE = Lifecycle(
    note="Acme Fine-Tuning is generally available; no retirement is announced.",
    source="https://ft.acme.example/docs/lifecycle",
)
