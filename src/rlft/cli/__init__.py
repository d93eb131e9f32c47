"""The ``rlft`` command.

Each command is a thin synchronous shell over the async API (``anyio.run``). No command prints a
traceback: ``rlft.exceptions.UsageError`` prints as one line with the fix and exits 2, another
``RLFTError`` exits 1, and anything else is reported in one line as a bug (exit 1);
``RLFT_TRACEBACK=1`` re-raises it for a full traceback.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from typing import Any, NoReturn

import click

from rlft._secrets import redact
from rlft._version import __version__
from rlft.exceptions import RLFTError, UsageError

__all__ = ["main"]

# Commands that live beside their feature; each module exports click commands by these names.
_COMMANDS: dict[str, tuple[str, ...]] = {
    "rlft.cli._graders": ("grade", "grader"),
    "rlft.cli._datasets": ("validate",),
    "rlft.cli._jobs": ("run", "preflight", "jobs"),
    "rlft.cli._eval": ("eval_command",),
    "rlft.serve._cli": ("serve",),
}


EXIT_USAGE = 2
EXIT_ERROR = 1


class _Group(click.Group):
    """Turns every error into one clear line and an exit code instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.Abort):
            raise  # click's own: it prints them as it should
        except Exception as exc:
            if os.environ.get("RLFT_TRACEBACK") == "1":
                raise
            _fail(exc)


def _fail(exc: BaseException) -> NoReturn:
    leaves = _leaves(exc)
    if len(leaves) > 1:  # a task group: one line per error, the worst exit code
        for leaf in leaves:
            click.secho(f"error: {_describe(leaf)}", fg="red", err=True)
        sys.exit(max(_exit_code(leaf) for leaf in leaves))
    (leaf,) = leaves
    click.secho(f"error: {_describe(leaf)}", fg="red", err=True)
    sys.exit(_exit_code(leaf))


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _exit_code(exc: BaseException) -> int:
    return EXIT_USAGE if isinstance(exc, UsageError | OSError) else EXIT_ERROR


def _describe(exc: BaseException) -> str:
    if isinstance(exc, UsageError):
        return str(exc)
    if isinstance(exc, RLFTError):
        return f"{type(exc).__name__}: {exc}"
    if isinstance(exc, OSError) and exc.strerror:  # a file we were pointed at
        where = f"{exc.filename}: " if exc.filename is not None else ""
        return redact(f"{where}{exc.strerror}")
    text = str(exc).strip().splitlines()
    first = text[0][:300] if text else ""
    return redact(
        f"unexpected {type(exc).__name__}: {first} (a bug in rlft: please report it; "
        "RLFT_TRACEBACK=1 shows the traceback)"
    )


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="rlft")
def main() -> None:
    """rlft: reinforcement fine-tuning on any backend, from one dataset and one grader."""


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def providers(as_json: bool) -> None:
    """List every discovered backend, where it came from, what it can do, and its lifecycle."""
    from rlft._client import Client

    client = Client()
    config = client.config  # read first: a bad rlft.toml or profile is reported here
    plugins = {info.name: info for info in client.plugins()}
    rows = []
    for spec in client.provider_specs():
        info = plugins.get(spec.plugin)
        origin = (
            f"{info.distribution} {info.version}"
            if info and info.distribution
            else f"built-in ({spec.plugin})"
        )
        missing = spec.missing_requirements()
        row: dict[str, Any] = {
            "name": spec.name,
            "plugin": spec.plugin,
            "from": origin,
            "installed": not missing,
            "install": (
                None
                if not missing
                else f"pip install 'rlft[{spec.extra}]'"
                if spec.extra
                else "pip install " + " ".join(missing)
            ),
            "default": spec.name == config.provider,
            "description": spec.description,
            "capabilities": _capabilities(spec) if not missing else None,
            "grader_format": spec.graders.format if spec.graders else "neutral",
            "lifecycle": (
                {"note": spec.lifecycle.note, "source": spec.lifecycle.source}
                if spec.lifecycle
                else None
            ),
        }
        rows.append(row)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    _print_providers(rows)
    for row in rows:
        if row["lifecycle"]:
            life = row["lifecycle"]
            click.echo(f"{row['name']}: {life['note']} (source: {life['source']})")
    source = config.sources.get("provider", "default")
    click.echo(f"default provider: {config.provider} (from {source})")


def _capabilities(spec: Any) -> list[str]:
    """The optional ``Provider`` methods the backend declares (each flag is a method name)."""
    from rlft.provider import Capabilities

    try:
        caps = spec.load().capabilities
    except ImportError:
        return []
    flags = [name for name, info in Capabilities.model_fields.items() if info.annotation is bool]
    return [flag for flag in flags if flag != "requires_validation_set" and getattr(caps, flag)]


def _print_providers(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="rlft providers")
    for column in ("name", "from", "installed", "capabilities", "description"):
        table.add_column(column)
    for row in rows:
        installed = "yes" if row["installed"] else f"no: {row['install']}"
        caps = ", ".join(row["capabilities"] or [])
        table.add_row(row["name"], row["from"], installed, caps, row["description"])
    Console().print(table)


def _add_feature_commands() -> None:
    for module_name, names in _COMMANDS.items():
        module = importlib.import_module(module_name)
        for name in names:
            main.add_command(getattr(module, name))


_add_feature_commands()
