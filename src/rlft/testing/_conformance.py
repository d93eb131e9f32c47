"""A conformance suite every provider plugin runs against itself.

Subclass ``ProviderConformance`` in a ``Test*`` class and supply a ``provider`` fixture backed by
your fake server (respx, moto, a local process):

    class TestAcme(ProviderConformance):
        @pytest.fixture
        def provider(self, acme_server: str) -> AcmeProvider:
            return AcmeProvider(settings=AcmeSettings(base_url=acme_server, api_key="sk-test"))

        @pytest.fixture
        def conformance_secrets(self) -> list[str]:
            return ["sk-test"]                 # must never show in a repr or an error

Override ``conformance_spec`` when your backend needs other data (Bedrock wants 100+ rows with a
``reference_answer``), and ``settle`` when the backend needs a nudge to move a job forward.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from rlft._models import Capabilities, Checkpoint, JobEvent, JobRecord, JobStatus, map_status
from rlft.exceptions import CapabilityError, NotFoundError, RLFTError
from rlft.provider import Provider

if TYPE_CHECKING:
    from rlft._spec import CreateJobRequest, JobSpec

__all__ = ["ProviderConformance", "default_conformance_spec"]

# Capability flag (the method's own name) -> the arguments a call needs: "job" is the job's id,
# "path" a folder, "payload" the compiled grader.
_OPTIONAL: dict[str, tuple[str, ...]] = {
    "pause_job": ("job",),
    "resume_job": ("job",),
    "list_jobs": (),
    "list_events": ("job",),
    "list_checkpoints": ("job",),
    "download_results": ("job", "path"),
    "validate_grader": ("payload",),
}


def default_conformance_spec(rows: int = 120) -> JobSpec:
    """A small job every backend accepts: a ticket-triage set and a string_check grader."""
    from rlft._spec import JobSpec
    from rlft.datasets import Dataset
    from rlft.graders import StringCheck

    labels = ["billing", "bug", "account", "shipping"]
    records = [
        {
            "messages": [{"role": "user", "content": f"ticket {i}: please route this"}],
            "label": labels[i % len(labels)],
            "reference_answer": labels[i % len(labels)],
        }
        for i in range(rows)
    ]
    train = Dataset.from_records(records[: rows - rows // 6])
    validation = Dataset.from_records(records[rows - rows // 6 :])
    grader = StringCheck(
        name="label", input="{{ sample.output_text }}", reference="{{ item.label }}", operation="eq"
    )
    return JobSpec(model="conformance-model", train=train, validation=validation, grader=grader)


class ProviderConformance:
    """The behaviour every provider shares. Subclass it; provide the ``provider`` fixture."""

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    def provider(self) -> Provider:
        raise NotImplementedError(
            "define a `provider` fixture in your ProviderConformance subclass"
        )

    @pytest.fixture
    def conformance_secrets(self) -> list[str]:
        """Secret values the provider was configured with; none may leak."""
        return []

    @pytest.fixture
    def conformance_spec(self) -> JobSpec:
        return default_conformance_spec()

    async def settle(self, provider: Provider, job_id: str) -> None:
        """Hook: move a remote job forward between calls, if your fake backend needs it."""

    async def _create(
        self, provider: Provider, spec: JobSpec, key: str = "conformance-key"
    ) -> JobRecord:
        from rlft._spec import CreateJobRequest
        from rlft.graders import compile as compile_grader

        provider.check_spec(spec)
        training_file = await provider.upload_dataset(spec.train, role="train")
        validation_file = (
            await provider.upload_dataset(spec.validation, role="validation")
            if spec.validation is not None
            else None
        )
        request: CreateJobRequest = CreateJobRequest(
            spec=spec,
            grader_payload=compile_grader(spec.grader, provider.name),
            training_file=training_file,
            validation_file=validation_file,
            idempotency_key=key,
        )
        return await provider.create_job(request)

    # --- the suite ----------------------------------------------------------------------------

    def test_declares_identity(self, provider: Provider) -> None:
        assert re.fullmatch(r"[a-z][a-z0-9_-]*", provider.name), provider.name
        assert isinstance(provider.capabilities, Capabilities)

    def test_its_facts_are_registered(self, provider: Provider) -> None:
        """rlft finds the backend's declared facts (status words, dataset rules, grader format)
        by its provider id: the plugin must be installed (``pip install -e .``) or loaded."""
        from rlft._plugins import find_provider

        spec = find_provider(provider.name)
        assert spec is not None, (
            f"no ProviderSpec is registered as {provider.name!r}: install the plugin so rlft "
            "finds its entry point, or load it with rlft.Client(plugins=[...])"
        )

    @pytest.mark.anyio
    async def test_create_get_cancel(self, provider: Provider, conformance_spec: JobSpec) -> None:
        record = await self._create(provider, conformance_spec)
        assert isinstance(record, JobRecord)
        assert record.provider == provider.name
        assert isinstance(record.status, JobStatus)
        assert record.provider_status, "the backend's own status word must be kept"

        await self.settle(provider, record.id)
        fetched = await provider.get_job(record.id)
        assert fetched.id == record.id
        assert isinstance(fetched.status, JobStatus)
        for seen in (record, fetched):  # statuses come from the declared vocabulary
            assert map_status(provider.name, seen.provider_status) is seen.status, seen

        if provider.capabilities.cancel_job:
            await provider.cancel_job(record.id)
            await self.settle(provider, record.id)
            after = await provider.get_job(record.id)
            assert after.status in {JobStatus.CANCELLED, JobStatus.RUNNING}, after
            # RUNNING is allowed only as a stopping state (e.g. Bedrock "Stopping").
            if after.status is JobStatus.RUNNING:
                assert after.provider_status.lower() in {"stopping", "cancelling"}, after

    @pytest.mark.anyio
    async def test_create_is_idempotent(
        self, provider: Provider, conformance_spec: JobSpec
    ) -> None:
        first = await self._create(provider, conformance_spec, key="same-key")
        second = await self._create(provider, conformance_spec, key="same-key")
        assert second.id == first.id, "a retried create must not start a second job"

    @pytest.mark.anyio
    async def test_unknown_job_is_not_found(self, provider: Provider) -> None:
        with pytest.raises(NotFoundError):
            await provider.get_job("rlft-conformance-no-such-job")

    @pytest.mark.anyio
    async def test_undeclared_operations_raise_capability_error(
        self, provider: Provider, conformance_spec: JobSpec, tmp_path: Path
    ) -> None:
        from rlft.graders import compile as compile_grader

        record = await self._create(provider, conformance_spec)
        values = {
            "job": record.id,
            "path": tmp_path,
            "payload": compile_grader(conformance_spec.grader, provider.name),
        }
        for method, args in _OPTIONAL.items():
            if getattr(provider.capabilities, method):
                continue
            call = getattr(provider, method)
            with pytest.raises(CapabilityError):
                await call(*[values[arg] for arg in args])

    @pytest.mark.anyio
    async def test_events_and_checkpoints_are_neutral(
        self, provider: Provider, conformance_spec: JobSpec
    ) -> None:
        record = await self._create(provider, conformance_spec)
        await self.settle(provider, record.id)
        await provider.get_job(record.id)
        if provider.capabilities.list_events:
            events = await provider.list_events(record.id)
            assert all(isinstance(event, JobEvent) for event in events)
            ids = [event.id for event in events]
            assert len(ids) == len(set(ids)), "event ids must be unique cursors"
            if ids:
                assert await provider.list_events(record.id, after=ids[-1]) == []
        if provider.capabilities.list_checkpoints:
            checkpoints = await provider.list_checkpoints(record.id)
            assert all(isinstance(c, Checkpoint) for c in checkpoints)

    @pytest.mark.anyio
    async def test_only_rlft_errors_escape(self, provider: Provider) -> None:
        calls: list[Any] = [provider.get_job("rlft-conformance-missing")]
        if provider.capabilities.list_events:
            calls.append(provider.list_events("rlft-conformance-missing"))
        for call in calls:
            with pytest.raises(RLFTError):
                await call

    @pytest.mark.anyio
    async def test_secrets_are_masked(
        self, provider: Provider, conformance_secrets: list[str]
    ) -> None:
        texts = [repr(provider), str(provider), repr(provider.settings), str(provider.settings)]
        try:
            await provider.get_job("rlft-conformance-missing")
        except RLFTError as exc:
            texts += [str(exc), repr(exc), repr(vars(exc))]
        for secret in conformance_secrets:
            for text in texts:
                assert secret not in text

    @pytest.mark.anyio
    async def test_aclose_is_idempotent(self, provider: Provider) -> None:
        await provider.aclose()
        await provider.aclose()
