"""The reward-curve PNG, drawn from the event log with matplotlib's Agg backend. Worker-only."""

from __future__ import annotations

from pathlib import Path

from rlft.workers.jobdir import JobDir

__all__ = ["reward_curve", "write_reward_curve"]


def reward_curve(job: JobDir) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """``(train, validation)`` as ``(step, mean reward)`` points from the metrics events."""
    train: list[tuple[int, float]] = []
    valid: list[tuple[int, float]] = []
    for _, event in job.iter_events():
        metrics = event.get("metrics") or {}
        step = metrics.get("step")
        if event.get("kind") != "metrics" or step is None:
            continue
        if metrics.get("train_reward_mean") is not None:
            train.append((step, metrics["train_reward_mean"]))
        if metrics.get("valid_reward_mean") is not None:
            valid.append((step, metrics["valid_reward_mean"]))
    return train, valid


def write_reward_curve(job: JobDir, *, title: str) -> Path | None:
    """Draw ``reward_curve.png``; ``None`` when there is nothing to draw yet."""
    train, valid = reward_curve(job)
    if not train and not valid:
        return None
    import matplotlib

    matplotlib.use("Agg")  # no display in a detached worker
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        axes.plot(*zip(*train, strict=True), label="train reward (mean)", linewidth=1.2)
    if valid:
        axes.plot(*zip(*valid, strict=True), "o-", label="validation reward (mean)")
    axes.set_xlabel("step")
    axes.set_ylabel("reward")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(job.reward_curve)
    plt.close(figure)
    return job.reward_curve
