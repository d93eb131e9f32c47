"""``rlft serve``: the command. Starlette and uvicorn are imported only when it runs."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import click

from rlft.exceptions import ConfigurationError, MissingDependencyError, UsageError

__all__ = ["serve"]


def _grader_flags(values: tuple[str, ...]) -> dict[str, Path]:
    graders: dict[str, Path] = {}
    for value in values:
        name, sep, file = value.partition("=")
        if not sep or not name or not file:
            raise UsageError(f"--grader {value!r}: use NAME=FILE (a grader .json or .yaml)")
        graders[name] = Path(file)
    return graders


def _config_section(cwd: Path | None) -> dict[str, Any]:
    from rlft._config import load_config

    config = load_config(cwd=cwd)
    section = dict(config.sections.get("serve", {}))
    for table in ("models", "graders"):
        if table in section and not isinstance(section[table], dict):
            raise ConfigurationError(f"{config.file}: [serve.{table}] must be a table")
    base = config.file.parent if config.file else Path.cwd()
    graders = {k: base / str(v) for k, v in section.get("graders", {}).items()}
    return {
        "provider": section.get("provider"),
        "models": {str(k): str(v) for k, v in section.get("models", {}).items()},
        "graders": graders,
        "keys_file": section.get("keys_file"),
    }


def _guards(reward_gap: float | None) -> tuple[Any, ...]:
    if reward_gap is None:
        return ()
    from rlft.guards import RewardGapGuard

    return (RewardGapGuard(threshold=reward_gap),)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, help="Port (0: any free port).")
@click.option("--provider", default=None, help="Default backend (else [serve] or the config).")
@click.option(
    "--grader",
    "graders",
    multiple=True,
    metavar="NAME=FILE",
    help="Serve a grader file at /graders/NAME/score (repeatable).",
)
@click.option("--keys-file", type=click.Path(dir_okay=False), help="API keys, one per line.")
@click.option("--rate", default=50.0, show_default=True, help="Requests/second per key.")
@click.option("--max-body-mb", default=64, show_default=True, help="Largest request body.")
@click.option("--poll-interval", type=float, default=None, help="Seconds between job polls.")
@click.option(
    "--reward-gap",
    type=float,
    default=None,
    help="Pause a job whose train reward runs this far above validation (RewardGapGuard).",
)
def serve(
    host: str,
    port: int,
    provider: str | None,
    graders: tuple[str, ...],
    keys_file: str | None,
    rate: float,
    max_body_mb: int,
    poll_interval: float | None,
    reward_gap: float | None,
) -> None:
    """Serve the OpenAI fine-tuning API, graders and a dashboard on any backend.

    Keys come from RLFT_SERVE_API_KEYS (comma-separated; `admin:KEY` for an admin key) or
    --keys-file. Without keys the server only binds to a loopback address.
    """
    from rlft.serve._options import ServeOptions, is_loopback, load_keys

    file_settings = _config_section(None)
    keys = load_keys(keys_file=keys_file or file_settings["keys_file"])
    if not keys and not is_loopback(host):
        raise UsageError(
            f"refusing to serve on {host} without API keys: set RLFT_SERVE_API_KEYS or "
            "--keys-file (or bind to 127.0.0.1)"
        )
    try:
        import uvicorn

        from rlft.serve._app import create_app
    except ImportError as exc:
        raise MissingDependencyError(
            "rlft serve", package=exc.name or "starlette", extra="serve"
        ) from None
    options = ServeOptions(
        provider=provider or file_settings["provider"],
        models=file_settings["models"],
        keys=keys,
        graders={**file_settings["graders"], **_grader_flags(graders)},
        rate=rate,
        burst=max(1, int(rate * 2)),
        max_body_bytes=max_body_mb * 1024 * 1024,
        poll_interval=poll_interval,
        guards=_guards(reward_gap),
    )
    app = create_app(options)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)  # connections queue from now on, so the printed address answers
    real_port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    if not keys:
        click.echo("no API keys set: serving this machine only, every caller is admin", err=True)
    click.echo(f"listening on http://{shown}:{real_port}", err=False)
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])
