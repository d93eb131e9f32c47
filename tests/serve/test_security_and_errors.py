"""Keys, limits and bad input, tried from the outside: OpenAI's envelope, never a 500."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rlft.serve import ApiKey, create_app, load_keys
from rlft.serve._options import hash_key, is_loopback

from .conftest import GRADER, KEY_A, METHOD, asgi_client, options, project, rows

pytestmark = pytest.mark.anyio
BACKEND_SECRET = "fake-backend-secret-value-42"


def envelope_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"]
    return body["error"]  # type: ignore[no-any-return]


async def upload(client: httpx.AsyncClient, content: bytes, name: str = "t.jsonl") -> Any:
    return await client.post(
        "/v1/files", files={"file": (name, content)}, data={"purpose": "fine-tune"}
    )


async def test_keys_are_required_and_wrong_ones_get_401(tmp_path: Path) -> None:
    app = create_app(options(project(tmp_path / "p")))
    async with asgi_client(app, key=None) as client:
        error = envelope_of(await client.get("/v1/fine_tuning/jobs"), 401)
        assert error["code"] == "invalid_api_key"
        wrong = {"Authorization": "Bearer sk-not-a-key-123"}
        error = envelope_of(await client.get("/v1/files", headers=wrong), 401)
        assert "sk-not-a-key-123" not in json.dumps(error)  # a key is never echoed
        ok = await client.get("/v1/files", headers={"api-key": KEY_A})  # Azure's header
        assert ok.status_code == 200
        ok = await client.get("/v1/files", headers={"Authorization": f"Bearer {KEY_A}"})
        assert ok.status_code == 200


def test_keys_come_hashed_from_env_and_file(tmp_path: Path) -> None:
    file = tmp_path / "keys"
    file.write_text(f"# team keys\nsha256:{hash_key('sk-from-file-1')}\nadmin:sk-root-12345\n")
    keys = load_keys(
        environ={"RLFT_SERVE_API_KEYS": "sk-env-1234, admin:sk-env-admin"}, keys_file=file
    )
    assert keys == (
        ApiKey.from_secret("sk-env-1234"),
        ApiKey.from_secret("sk-env-admin", admin=True),
        ApiKey.from_secret("sk-from-file-1"),
        ApiKey.from_secret("sk-root-12345", admin=True),
    )
    assert all("sk-" not in repr(key) for key in keys)  # only digests are kept
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2")


async def test_oversized_requests_get_413(tmp_path: Path) -> None:
    app = create_app(options(project(tmp_path / "p"), max_body_bytes=2000))
    async with asgi_client(app) as client:
        error = envelope_of(await upload(client, rows(100)), 413)
        assert error["code"] == "request_too_large"

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
            for _ in range(10):
                yield b"x" * 500

        streamed = await client.post("/v1/fine_tuning/jobs", content=chunks())
        envelope_of(streamed, 413)
        assert (await client.get("/v1/files")).status_code == 200  # still serving


async def test_rates_are_limited_per_key(tmp_path: Path) -> None:
    app = create_app(options(project(tmp_path / "p"), rate=0.5, burst=3))
    async with asgi_client(app) as client:
        for _ in range(3):
            assert (await client.get("/v1/files")).status_code == 200
        limited = await client.get("/v1/files")
        error = envelope_of(limited, 429)
        assert int(limited.headers["retry-after"]) >= 1 and error["type"] == "rate_limit_exceeded"
        # Another key has its own budget.
        other = await client.get("/v1/files", headers={"Authorization": "Bearer sk-bob-0123456789"})
        assert other.status_code == 200


async def test_bad_input_gets_the_envelope_with_the_right_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RLFT_FAKE_API_KEY", BACKEND_SECRET)
    app = create_app(options(project(tmp_path / "p")))
    seen: list[str] = []
    async with asgi_client(app) as client:

        async def call(method: str, url: str, **kwargs: Any) -> httpx.Response:
            response = await client.request(method, url, **kwargs)
            seen.append(response.text)
            return response

        # A malformed upload names the line (and the field).
        bad_json = rows(2) + b"{not json\n"
        error = envelope_of(
            await client.post(
                "/v1/files", files={"file": ("t.jsonl", bad_json)}, data={"purpose": "fine-tune"}
            ),
            400,
        )
        assert "t.jsonl line 3" in error["message"]
        bad_role = {"messages": [{"role": "wizard", "content": "hi"}], "label": "x"}
        error = envelope_of(await upload(client, rows(2) + json.dumps(bad_role).encode()), 400)
        assert "line 3, field messages[0].role" in error["message"], error
        assert error["param"] == "messages[0].role"
        envelope_of(await call("POST", "/v1/files", content=b"not multipart"), 400)
        error = envelope_of(
            await call(
                "POST",
                "/v1/files",
                files={"file": ("t.jsonl", rows())},
                data={"purpose": "assistants"},
            ),
            400,
        )
        assert error["param"] == "purpose"

        # Unknown ids.
        envelope_of(await call("GET", "/v1/files/file-nope"), 404)
        envelope_of(await call("GET", "/v1/files/../../etc/passwd"), 404)
        envelope_of(await call("GET", "/v1/fine_tuning/jobs/rlft-000000000000"), 404)
        envelope_of(await call("GET", "/v1/fine_tuning/jobs/ftjob-x/events"), 404)
        envelope_of(await call("GET", "/v1/no/such/route"), 404)
        good = (await upload(client, rows())).json()["id"]
        job = {"model": "m", "training_file": good, "method": METHOD}
        error = envelope_of(
            await call("POST", "/v1/fine_tuning/jobs", json={**job, "training_file": "file-x"}),
            400,
        )
        assert error["param"] == "training_file"

        # A row without the field the grader reads: refused at create, naming line and field.
        unlabelled = b"".join(
            json.dumps({"messages": [{"role": "user", "content": f"q{i}"}]}).encode() + b"\n"
            for i in range(12)
        )
        plain = (await upload(client, unlabelled)).json()["id"]
        error = envelope_of(
            await call("POST", "/v1/fine_tuning/jobs", json={**job, "training_file": plain}), 400
        )
        assert f"t.jsonl ({plain}) line 1" in error["message"], error
        assert "label" in error["message"]

        # A grader that fails to compile, by create, validate and run.
        broken = {"type": "python", "name": "py", "source": "def grade(sample, item:\n  return 1"}
        bad_method = {"type": "reinforcement", "reinforcement": {"grader": broken}}
        error = envelope_of(
            await call("POST", "/v1/fine_tuning/jobs", json={**job, "method": bad_method}), 400
        )
        assert error["param"].startswith("method.reinforcement.grader")
        for path in ("validate", "run"):
            body = {"grader": broken, "model_sample": "x"}
            error = envelope_of(
                await call("POST", f"/v1/fine_tuning/alpha/graders/{path}", json=body), 400
            )
            assert error["code"] == "invalid_grader"

        # Hyperparameters out of range, and of the wrong kind.
        for params, field in (({"n_epochs": 0}, "n_epochs"), ({"batch_size": "big"}, "batch_size")):
            method = {
                "type": "reinforcement",
                "reinforcement": {"grader": GRADER, "hyperparameters": params},
            }
            error = envelope_of(
                await call("POST", "/v1/fine_tuning/jobs", json={**job, "method": method}), 400
            )
            assert error["param"] == f"method.reinforcement.hyperparameters.{field}"
        error = envelope_of(
            await call("POST", "/v1/fine_tuning/jobs", json={**job, "seed": -1}), 400
        )
        assert error["param"] == "seed"

        # Not JSON, and JSON of the wrong shape.
        envelope_of(await call("POST", "/v1/fine_tuning/jobs", content=b"{oops"), 400)
        envelope_of(await call("POST", "/v1/fine_tuning/jobs", json=[1, 2]), 400)
        envelope_of(await call("GET", "/v1/fine_tuning/jobs?limit=lots"), 400)
        envelope_of(await call("GET", "/v1/files?limit=-3"), 400)
        envelope_of(await call("GET", "/v1/files?limit=x"), 400)
        envelope_of(await call("DELETE", "/v1/fine_tuning/jobs"), 405)

        # The server keeps serving, and a good create works.
        created = await call("POST", "/v1/fine_tuning/jobs", json=job)
        assert created.status_code == 200, created.text
        listed = await call("GET", "/v1/fine_tuning/jobs")
        assert [j["id"] for j in listed.json()["data"]] == [created.json()["id"]]
    assert not any(BACKEND_SECRET in text for text in seen)


async def test_model_names_pick_the_backend(tmp_path: Path) -> None:
    folder = project(tmp_path / "p")
    app = create_app(options(folder, provider="no-such-backend", models={"fake-*": "fake"}))
    async with asgi_client(app) as client:
        file_id = (await upload(client, rows())).json()["id"]
        job = {"training_file": file_id, "method": METHOD}
        made = await client.post("/v1/fine_tuning/jobs", json={**job, "model": "fake-small"})
        assert made.status_code == 200 and made.json()["backend"] == "fake"
        # Any other model goes to the default backend, which does not exist here.
        error = envelope_of(
            await client.post("/v1/fine_tuning/jobs", json={**job, "model": "gpt-4o"}), 400
        )
        assert "no-such-backend" in error["message"]


async def test_without_keys_the_loopback_caller_is_the_local_admin(tmp_path: Path) -> None:
    app = create_app(options(project(tmp_path / "p"), keys=()))
    async with asgi_client(app, key=None) as client:
        listed = await client.get("/v1/fine_tuning/jobs")
        assert listed.status_code == 200 and listed.json()["data"] == []
        home = await client.get("/")
        assert "signed in as admin" in home.text


WEIRD: list[Any] = [None, 0, -1, 1.5, "", "x" * 300, [], [1], {}, {"a": {}}, True]


async def test_every_field_of_every_body_replaced_with_junk_never_gets_a_500(
    tmp_path: Path,
) -> None:
    app = create_app(options(project(tmp_path / "p"), rate=10_000, burst=10_000))
    async with asgi_client(app) as client:
        file_id = (await upload(client, rows())).json()["id"]
        bodies = {
            "/v1/fine_tuning/jobs": {
                "model": "m",
                "training_file": file_id,
                "validation_file": file_id,
                "method": {
                    "type": "reinforcement",
                    "reinforcement": {"grader": GRADER, "hyperparameters": {"n_epochs": 1}},
                },
                "seed": 1,
                "suffix": "s",
                "metadata": {"k": "v"},
            },
            "/v1/fine_tuning/alpha/graders/run": {
                "grader": GRADER,
                "model_sample": "billing",
                "item": {"label": "billing"},
            },
            "/v1/fine_tuning/alpha/graders/validate": {"grader": GRADER},
        }
        statuses: set[int] = set()
        for url, good in bodies.items():
            for field in good:
                for junk in WEIRD:
                    response = await client.post(url, json={**good, field: junk})
                    statuses.add(response.status_code)
                    assert response.status_code in (200, 400), (url, field, junk, response.text)
                    if response.status_code == 400:
                        envelope_of(response, 400)
            for junk in WEIRD:  # nested: the grader's own fields
                for key in GRADER:
                    grader = {**GRADER, key: junk}
                    body = {**good, "grader": grader} if "grader" in good else good
                    response = await client.post(url, json=body)
                    assert response.status_code in (200, 400), (url, key, junk, response.text)
        assert statuses == {200, 400}
