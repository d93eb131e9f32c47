from __future__ import annotations

import pytest

from rlft import JobEvent, JobStatus
from rlft._models import map_status
from rlft._plugins import builtin_plugins, find_provider


@pytest.mark.parametrize(
    ("provider", "native", "expected"),
    [
        ("openai", "validating_files", JobStatus.PENDING),
        ("openai", "queued", JobStatus.PENDING),
        ("openai", "running", JobStatus.RUNNING),
        ("openai", "paused", JobStatus.PAUSED),
        ("openai", "succeeded", JobStatus.SUCCEEDED),
        ("openai", "failed", JobStatus.FAILED),
        ("openai", "cancelled", JobStatus.CANCELLED),
        ("azure", "created", JobStatus.PENDING),
        ("azure", "pausing", JobStatus.PAUSING),
        ("azure", "resuming", JobStatus.RUNNING),
        ("azure", "Paused", JobStatus.PAUSED),
        ("bedrock", "InProgress", JobStatus.RUNNING),
        ("bedrock", "Completed", JobStatus.SUCCEEDED),
        ("bedrock", "Failed", JobStatus.FAILED),
        ("bedrock", "Stopping", JobStatus.RUNNING),
        ("bedrock", "Stopped", JobStatus.CANCELLED),
    ],
)
def test_native_statuses_map_to_neutral(provider: str, native: str, expected: JobStatus) -> None:
    assert map_status(provider, native) is expected


def test_unknown_statuses_never_crash_and_keep_watching() -> None:
    assert map_status("openai", "quantum_superposition") is JobStatus.RUNNING
    assert map_status("bedrock", "") is JobStatus.RUNNING
    assert map_status("some-plugin", "succeeded") is JobStatus.SUCCEEDED
    assert map_status("openai", "weird", default=JobStatus.PENDING) is JobStatus.PENDING


def test_every_builtin_reaches_every_terminal_status() -> None:
    for provider in builtin_plugins():
        spec = find_provider(provider)
        assert spec is not None, provider
        words = [*spec.statuses, *(status.value for status in JobStatus)]
        reached = {map_status(provider, word) for word in words}
        assert {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED} <= reached, provider


def test_a_declared_vocabulary_is_read_from_the_registry() -> None:
    import rlft
    from rlft.provider import ProviderRegistry, ProviderSettings, ProviderSpec

    class Plugin:
        @rlft.hookimpl
        def rlft_register_providers(self, registry: ProviderRegistry) -> None:
            registry.add(
                ProviderSpec(
                    name="vocab-test",
                    settings=ProviderSettings,
                    factory="rlft.testing._fake:FakeProvider",
                    statuses={"Warming": "pending", "done": JobStatus.SUCCEEDED},
                )
            )

    assert map_status("vocab-test", "warming") is JobStatus.RUNNING  # not loaded yet: unknown
    rlft.Client(plugins=[Plugin()], autoload=False).provider_specs()
    assert map_status("vocab-test", "WARMING") is JobStatus.PENDING
    assert map_status("vocab-test", "done") is JobStatus.SUCCEEDED
    assert map_status("vocab-test", "succeeded") is JobStatus.SUCCEEDED  # neutral words hold


def test_terminal_statuses() -> None:
    assert {s for s in JobStatus if s.is_terminal} == {
        JobStatus.SUCCEEDED,
        JobStatus.FAILED,
        JobStatus.CANCELLED,
    }


@pytest.mark.parametrize(
    ("level", "expected"),
    [("warn", "warning"), ("warning", "warning"), ("info", "info"), ("error", "error")],
)
def test_event_levels_are_normalised(level: str, expected: str) -> None:
    assert JobEvent(id="e1", job_id="j", level=level).level == expected  # type: ignore[arg-type]


def test_a_plugin_maps_its_own_vocabulary_through_the_public_contract() -> None:
    from rlft.provider import map_status as public_map_status

    table = {"warming": JobStatus.PENDING, "done": JobStatus.SUCCEEDED}
    assert public_map_status("acme", "Warming", table=table) is JobStatus.PENDING
    assert public_map_status("acme", "done", table=table) is JobStatus.SUCCEEDED
    assert public_map_status("acme", "exploding", table=table) is JobStatus.RUNNING
