"""Secrets appear nowhere: not in errors, attributes, chained tracebacks, logs or written files.

Each test uses a fresh random key (so no earlier test registered it) that does not look like an
``sk-`` key or a bearer token, so only the registry of live secrets can be what masks it. The
servers echo it back in every field they can.
"""

from __future__ import annotations

import json
import logging
import pickle
import secrets
import traceback
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import respx
from botocore.stub import Stubber
from click.testing import CliRunner
from moto import mock_aws
from pydantic import SecretStr

import rlft
from rlft import exceptions
from rlft._secrets import (
    SecretFilter,
    redact,
    redacting,
    register_secret,
    scrub_exception,
)
from rlft.cli import main
from rlft.testing._fake_openai_api import FakeFineTuningServer

pytestmark = pytest.mark.anyio

ROWS = [
    {"messages": [{"role": "user", "content": f"ticket {i}"}], "label": ["bug", "billing"][i % 2]}
    for i in range(6)
]


def canary() -> str:
    """A key no earlier test registered, shaped like no pattern rlft masks by shape."""
    return f"CANARY{secrets.token_hex(16)}"


def everything_about(error: BaseException) -> str:
    """Every way an error's text can be seen: str, repr, attributes, chained traceback, pickle."""
    parts = ["".join(traceback.format_exception(error)), repr(error), str(error)]
    parts += [repr(value) for value in vars(error).values()]
    again = pickle.loads(pickle.dumps(error))
    parts += ["".join(traceback.format_exception(again)), repr(vars(again))]
    return "\n".join(parts)


def files_under(*folders: Path) -> str:
    """Every byte of every file under ``folders``, as text (SQLite main file and WAL included)."""
    chunks = []
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                chunks.append(path.read_bytes().decode("latin-1"))
    return "\n".join(chunks)


class EchoingServer:
    """The fake OpenAI API, but every answer that can carry the caller's key does.

    Jobs fail at once with the key in the error's message, code and param, and carry events that
    quote the key. ``echo_errors`` scripts error answers that put the key in every field.
    """

    def __init__(self) -> None:
        self.fake = FakeFineTuningServer(prefix="/v1")
        self.keys: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        key = request.headers.get("Authorization", "").partition(" ")[2]
        self.keys.append(key)
        response = self.fake(request)
        if request.method == "POST" and request.url.path == "/v1/fine_tuning/jobs":
            job_id = response.json()["id"]
            job = self.fake.jobs[job_id]
            job.events.append(
                {
                    "object": "fine_tuning.job.event",
                    "id": "ftevent-echo",
                    "created_at": 1_760_000_500,
                    "level": "error",
                    "message": f"grader rejected api key {key}",
                    "type": "message",
                    "data": {"key": key},
                }
            )
            self.fake.fail(job_id, message=f"the key {key} is not allowed to train")
            job.body["error"].update(code=f"bad_key_{key}", param=key)
        return response


def echo_errors(key: str) -> list[httpx.Response]:
    """Error answers with the key in the message, code, param, type, body and headers."""
    envelope = {"message": f"bad key {key}", "param": key, "code": key, "type": key}
    return [
        httpx.Response(400, json={"error": envelope}),
        httpx.Response(401, json={"error": envelope}, headers={"x-request-id": key}),
        httpx.Response(500, text=f"<html>upstream said {key}</html>"),
        httpx.Response(200, text=f"<html>not json {key}</html>"),  # the malformed-body path
        httpx.Response(200, json={"object": "fine_tuning.job", "echo": key}),  # unexpected shape
        httpx.Response(200, json={"data": key}),  # an unexpected page
    ]


@pytest.fixture
def debug_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


def project(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(row) + "\n" for row in ROWS)
    (folder / "train.jsonl").write_text(lines)
    (folder / "valid.jsonl").write_text(lines)
    (folder / "job.toml").write_text(
        'name = "echo"\nmodel = "o4-mini-2025-04-16"\ntrain = "train.jsonl"\n'
        'validation = "valid.jsonl"\n'
        '[grader]\ntype = "string_check"\nname = "label"\n'
        'input = "{{ sample.output_text }}"\nreference = "{{ item.label }}"\noperation = "eq"\n'
    )
    return folder / "job.toml"


async def test_openai_errors_that_echo_the_key_mask_it_everywhere(
    monkeypatch: pytest.MonkeyPatch, debug_log: pytest.LogCaptureFixture
) -> None:
    key = canary()
    monkeypatch.setenv("OPENAI_API_KEY", key)
    monkeypatch.setenv("RLFT_OPENAI_MAX_RETRIES", "0")
    seen: list[str] = []
    with respx.mock(assert_all_mocked=True) as mock:
        route = mock.route(host="api.openai.com")
        async with rlft.Client(provider="openai", autoload=False) as client:
            for answer in echo_errors(key):
                route.mock(return_value=answer)
                with pytest.raises(exceptions.ProviderAPIError) as caught:
                    await client.jobs.get("ftjob-abc")
                text = everything_about(caught.value)
                assert "***" in text
                seen.append(text)
            route.mock(return_value=echo_errors(key)[-1])
            with pytest.raises(exceptions.ProviderAPIError) as caught:
                await client.jobs.list(remote=True)
            seen.append(everything_about(caught.value))
        sent = route.calls[0].request.headers["Authorization"]
    assert sent == f"Bearer {key}"  # the server did get the real key
    for text in seen:
        assert key not in text
    assert key not in debug_log.text
    assert all(key not in str(record.__dict__) for record in debug_log.records)


def test_rlft_run_against_an_echoing_server_writes_and_prints_no_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, debug_log: pytest.LogCaptureFixture
) -> None:
    key = canary()
    home = tmp_path / "home"
    monkeypatch.setenv("RLFT_HOME", str(home))
    monkeypatch.setenv("OPENAI_API_KEY", key)
    monkeypatch.setenv("RLFT_OPENAI_MAX_RETRIES", "0")
    job_file = project(tmp_path / "project")
    server = EchoingServer()
    with respx.mock(assert_all_mocked=True) as mock:
        mock.route(host="api.openai.com").mock(side_effect=server)
        result = CliRunner().invoke(
            main,
            ["run", str(job_file), "--provider", "openai", "--no-preflight", "--json"],
        )
        shown = CliRunner().invoke(main, ["jobs", "list", "--json"])
    assert server.keys and set(server.keys) == {key}
    assert "failed" in result.output, result.output
    assert "***" in result.output  # the job's error was shown, masked
    written = files_under(home, tmp_path / "project")
    assert "jobs.db" in {p.name for p in home.rglob("*")}
    assert "grader rejected api key ***" in written  # the event row is there, masked
    assert key not in written
    assert key not in result.output + shown.output
    assert key not in debug_log.text
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        assert key not in everything_about(result.exception)


async def test_job_failed_error_from_an_echoed_job_error_is_masked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key = canary()
    monkeypatch.setenv("OPENAI_API_KEY", key)
    server = EchoingServer()
    with respx.mock(assert_all_mocked=True) as mock:
        mock.route(host="api.openai.com").mock(side_effect=server)
        async with rlft.Client(provider="openai", autoload=False, store=tmp_path / "j.db") as c:
            dataset = rlft.Dataset.from_records(ROWS)
            job = await c.jobs.create(
                model="o4-mini-2025-04-16",
                train=dataset,
                validation=dataset,
                grader=rlft.graders.StringCheck(
                    name="label",
                    input="{{ sample.output_text }}",
                    reference="{{ item.label }}",
                    operation="eq",
                ),
            )
            await job.refresh()
            with pytest.raises(exceptions.JobFailedError) as caught:
                job.raise_for_status()
    assert "the key *** is not allowed" in str(caught.value)
    assert key not in everything_about(caught.value)
    assert key not in files_under(tmp_path)


def test_aws_session_token_never_reaches_botocore_debug_logs_or_errors(
    monkeypatch: pytest.MonkeyPatch, debug_log: pytest.LogCaptureFixture
) -> None:
    from rlft_providers.bedrock._aws import Aws

    secret_key, token = canary(), canary() + "/+=" + canary()  # a token with URL-unsafe bytes
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    import anyio

    with mock_aws():  # moto replaces the env's keys, so the session carries ours explicitly
        session = boto3.Session(
            aws_access_key_id="AKIAHARDENINGTEST",
            aws_secret_access_key=secret_key,
            aws_session_token=token,
            region_name="us-east-1",
        )
        aws = Aws(session=session, max_attempts=1, max_concurrency=2)
        anyio.run(lambda: aws.call("s3", "create_bucket", Bucket="rlft-hardening"))
        # moto saw the token: botocore signed with it and logged the request at DEBUG.
        assert any("X-Amz-Security-Token" in r.getMessage() for r in debug_log.records)
        stubber = Stubber(aws.client("bedrock"))
        stubber.add_client_error(
            "get_model_customization_job",
            service_error_code="ValidationException",
            service_message=f"token {token} and key {secret_key} are invalid",
            http_status_code=400,
        )
        with stubber, pytest.raises(exceptions.BadRequestError) as caught:
            anyio.run(lambda: aws.call("bedrock", "get_model_customization_job", jobIdentifier="j"))
        aws.close()
    text = everything_about(caught.value)
    assert "token *** and key ***" in text
    for value in (secret_key, token):
        assert value not in text
        assert value not in debug_log.text


async def test_an_entra_token_is_masked_once_fetched() -> None:
    from rlft_providers.azure._auth import CredentialSource, EntraToken

    token = canary()

    class Credential:
        async def get_token(self, *scopes: str) -> Any:
            return type("Access", (), {"token": token, "expires_on": 4_000_000_000})()

        async def close(self) -> None:
            return None

    entra = EntraToken(provider="azure", scope="s", source=CredentialSource(Credential()))
    assert await entra.headers() == {"Authorization": f"Bearer {token}"}
    error = exceptions.ProviderAPIError(f"echo {token}", provider="azure", param=token)
    assert token not in everything_about(error)
    assert error.param == "***"


# --- the registry itself ------------------------------------------------------------------------


def test_a_registered_secret_is_masked_in_every_form_a_server_may_write_it() -> None:
    value = canary() + "/a+b=c"
    assert redact(value) == value  # not registered yet: nothing to hide
    register_secret(SecretStr(value))
    assert redact(f"x {value} y") == "x *** y"
    assert redact(json.dumps({"k": value})) == '{"k": "***"}'  # JSON escapes "/" only optionally
    assert redact(value.replace("/", "\\/")) == "***"
    assert redact(httpx.QueryParams({"k": value}).__str__()) == "k=***"


def test_short_values_are_not_masked_by_value_but_keys_are_by_shape() -> None:
    register_secret("abc")  # would hide "abc" in every word
    assert redact("abcdef") == "abcdef"
    assert redact("key sk-abcdefgh12345 and Authorization: Bearer eyJ0eXAi.eyJhdWQ.sig-1") == (
        "key sk-*** and Authorization: Bearer ***"
    )
    assert redact("use bearer authentication.") == "use bearer authentication."


def test_the_log_filter_covers_child_loggers_and_exception_text(
    debug_log: pytest.LogCaptureFixture,
) -> None:
    value = canary()
    register_secret(value)
    logging.getLogger("botocore.endpoint.deep").debug("headers %r", {"token": value})
    try:
        raise ValueError(f"wrapped {value}")
    except ValueError:
        logging.getLogger("httpx").exception("failed")
    unrelated = logging.getLogger("someone.else")
    unrelated.debug("their own %s", value)  # not rlft's: left as it is
    assert value not in debug_log.records[0].getMessage()
    handler = logging.StreamHandler(stream := __import__("io").StringIO())
    for record in debug_log.records[:2]:
        handler.handle(record)
    rendered = stream.getvalue()
    assert value not in rendered and "wrapped ***" in rendered
    assert value in debug_log.records[2].getMessage()
    assert SecretFilter().filter(debug_log.records[2]) is True  # a filter never drops a record


def test_chained_foreign_errors_are_scrubbed_when_an_rlft_error_is_raised() -> None:
    value = canary()
    register_secret(value)

    class Foreign(Exception):
        def __init__(self, text: str) -> None:
            super().__init__(text)
            self.detail = text

    try:
        try:
            raise Foreign(f"server said {value}")
        except Foreign as inner:
            raise exceptions.ServerError("upstream failed", provider="x") from inner
    except exceptions.ServerError as caught:
        error = caught
    assert isinstance(error.__cause__, Foreign)
    assert error.__cause__.detail == "server said ***"
    assert value not in "".join(traceback.format_exception(error))
    group = ExceptionGroup("g", [Foreign(value)])
    scrub_exception(group)
    assert value not in "".join(traceback.format_exception(group))


def test_the_store_write_path_redacts_every_string_parameter(tmp_path: Path) -> None:
    import sqlite3

    value = canary()
    register_secret(value)
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    wrapped = redacting(conn)
    wrapped.execute("CREATE TABLE t (a TEXT, b INTEGER)")
    wrapped.execute("INSERT INTO t VALUES (?, ?)", (f"error {value}", 1))
    wrapped.executemany("INSERT INTO t VALUES (:a, :b)", [{"a": value, "b": 2}])
    rows = wrapped.execute("SELECT a, b FROM t ORDER BY b").fetchall()
    conn.close()
    assert rows == [("error ***", 1), ("***", 2)]
    assert value not in (tmp_path / "x.db").read_bytes().decode("latin-1")


async def test_the_job_store_masks_what_bypassed_every_other_boundary(tmp_path: Path) -> None:
    from rlft._store import JobStore
    from rlft.provider import JobErrorInfo, JobEvent, JobRecord, JobStatus

    value = canary()
    register_secret(value)
    # model_construct skips the models' own masking: only the store's write path is left.
    error = JobErrorInfo.model_construct(message=f"bad {value}", code=value, param=value)
    record = JobRecord.model_construct(
        id="job-1", provider="fake", status=JobStatus.FAILED, provider_status="failed",
        model=None, fine_tuned_model=None, name=None, created_at=None, finished_at=None,
        error=error, metadata={}, raw=None,
    )  # fmt: skip
    event = JobEvent.model_construct(
        id="e1", job_id="job-1", level="error", kind="message", message=f"echo {value}",
        metrics=None, raw=None, at=__import__("datetime").datetime.now(),
    )  # fmt: skip
    assert value in event.message and value in error.message
    store = JobStore(path=tmp_path / "jobs.db")
    row = await store.begin_create(
        provider="fake", scope="s", idempotency_key="k", spec_hash=None, name=f"n-{value}",
        labels={"team": value}, model=None,
    )  # fmt: skip
    await store.finish_create(row.local_id, record)
    await store.record_events(row.local_id, [event])
    (logged,) = await store.events(row.local_id)
    await store.aclose()
    assert logged.message == "echo ***"
    assert value not in files_under(tmp_path)


async def test_a_plugins_bearer_token_from_its_auth_hook_is_masked_when_echoed_bare() -> None:
    from rlft.openai_compat import OpenAICompatClient, to_job
    from rlft.testing import FakeFineTuningServer

    token, query_key = canary(), canary()

    async def auth() -> dict[str, str]:  # a third-party backend's own token source
        return {"Authorization": f"Bearer {token}"}

    server = FakeFineTuningServer(prefix="/v1")
    client = OpenAICompatClient(
        provider="acme",
        base_url="https://acme.test/v1",
        auth=auth,
        secrets=[query_key],
        transport=httpx.MockTransport(server),
    )
    echoed = {"id": "j", "status": "failed", "error": {"message": f"bad {token}", "param": token}}
    server.fail_next.append(httpx.Response(200, json=echoed))
    body = await client.request("GET", "/fine_tuning/jobs/j")
    await client.aclose()
    assert body["error"]["param"] == token  # the wire layer hands the body over as sent
    record = to_job(body, provider="acme", vocabulary="openai")
    assert record.error is not None and record.error.message == "bad ***"
    error = exceptions.ProviderAPIError(f"{token} {query_key}", provider="acme")
    assert token not in repr(record) and token not in everything_about(error)
    assert query_key not in everything_about(error)
