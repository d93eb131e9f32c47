"""Configuration: explicit arguments > ``RLFT_*`` env > ``rlft.toml`` / ``[tool.rlft]`` > defaults.

Read when a ``Client`` is built, never at import. A file looks like:

    provider = "local"              # the default provider
    [openai]                        # settings of one provider, by its id
    base_url = "https://api.openai.com/v1"
    [profiles.prod]                 # `Client(profile="prod")` or RLFT_PROFILE=prod
    provider = "bedrock"
    [profiles.prod.bedrock]
    region = "us-east-1"

Per-provider settings also come from ``RLFT_<PROVIDER>_<FIELD>`` env vars (``RLFT_BEDROCK_REGION``)
and from the provider's own env names (``OPENAI_API_KEY``). Secrets only come from the
environment: a secret in a file is refused with the env var to use instead.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic

from rlft._limits import MAX_DEPTH, find_problem_value
from rlft._secrets import register_settings
from rlft.exceptions import ConfigurationError
from rlft.provider import ProviderSettings, ProviderSpec

__all__ = [
    "DEFAULT_PROVIDER",
    "Config",
    "build_settings",
    "find_config_file",
    "key_line",
    "load_config",
    "read_toml",
    "toml_type",
    "tracking_config",
]

DEFAULT_PROVIDER = "local"


@dataclass(frozen=True)
class Config:
    """The resolved configuration. ``sources`` says where each value came from, for errors."""

    provider: str = DEFAULT_PROVIDER
    profile: str | None = None
    file: Path | None = None
    sections: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Provider id -> settings from the file (profile applied)."""
    sources: Mapping[str, str] = field(default_factory=dict)


def find_config_file(cwd: Path) -> tuple[Path, dict[str, Any]] | None:
    """The nearest ``rlft.toml``, or ``pyproject.toml`` with ``[tool.rlft]``, from cwd upwards."""
    for folder in (cwd, *cwd.parents):
        candidate = folder / "rlft.toml"
        if candidate.is_file():
            return candidate, read_toml(candidate, what="config file")[0]
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            tool = read_toml(pyproject, what="pyproject.toml")[0].get("tool")
            table = tool.get("rlft") if isinstance(tool, dict) else None
            if isinstance(table, dict):
                return pyproject, table
    return None


_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def read_toml(path: Path, *, what: str = "TOML file") -> tuple[dict[str, Any], str]:
    """Read a TOML file: ``(data, text)``. Every way a file can be bad is one located line.

    Raises:
        ConfigurationError: Missing or unreadable, binary, UTF-16, not UTF-8 (``file:line:col``),
            not TOML (tomllib's line and column), or nested over ``MAX_DEPTH`` levels.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigurationError(f"{path}: no such {what}") from None
    except (OSError, ValueError) as exc:  # a directory, no permission, a NUL in the path
        reason = getattr(exc, "strerror", None) or exc
        raise ConfigurationError(f"{path}: cannot read the {what}: {reason}") from None
    if raw.startswith(_UTF16_BOMS):
        raise ConfigurationError(f"{path}: the {what} is UTF-16 encoded; re-save it as UTF-8")
    if b"\x00" in raw:
        raise ConfigurationError(
            f"{path}: the {what} looks binary (it has NUL bytes); pass a UTF-8 TOML text file"
        )
    try:
        text = raw.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigurationError(
            f"{path}:{line}:{column}: byte 0x{raw[exc.start]:02x} is not valid UTF-8; re-save the "
            f"{what} as UTF-8 (it may be Latin-1 or Windows-1252)"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigurationError(
            f"{path}: the {what} nests too deeply; rlft allows {MAX_DEPTH} levels of arrays and "
            "tables"
        ) from None
    found = find_problem_value(data)
    if found is not None:
        kind, where = found
        key_at = key_line(text, where.split(".")[0].split("[")[0])
        located = f"{path}:{key_at}" if key_at else str(path)
        raise ConfigurationError(
            f"{located}: {where} nests more than {MAX_DEPTH} levels deep; flatten it"
            if kind == "too-deep"
            else f"{located}: {where} holds a lone UTF-16 surrogate; remove the \\uD8xx escape"
        )
    return data, text


def key_line(text: str, key: str) -> int | None:
    """The 1-based line where top-level ``key`` is set (``key =`` or ``[key]``), if found."""
    name = re.escape(key)
    pattern = rf"""^\s*(?:{name}|"{name}"|'{name}')\s*(?:=|\.)|^\s*\[+\s*{name}\s*[\].]"""
    match = re.search(pattern, text, flags=re.MULTILINE)
    return text.count("\n", 0, match.start()) + 1 if match else None


def toml_type(value: Any) -> str:
    """What a TOML value is, in TOML's words (``"a table"``, ``"an array"``)."""
    if isinstance(value, bool):
        return "a boolean"
    names = {
        str: "a string",
        int: "an integer",
        float: "a float",
        dict: "a table",
        list: "an array",
    }
    return names.get(type(value), "a date/time")


def load_config(
    *,
    cwd: Path | None = None,
    provider: str | None = None,
    profile: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Resolve the provider and its file settings.

    Args:
        cwd: Where to start looking for ``rlft.toml`` (default: the current directory).
        provider: An explicit provider id; beats everything.
        profile: An explicit profile name; beats ``RLFT_PROFILE``.
        environ: The environment to read (default ``os.environ``).

    Raises:
        ConfigurationError: A bad file, an unknown profile, a secret written in a file.
    """
    env = os.environ if environ is None else environ
    explicit_file = env.get("RLFT_CONFIG")
    if explicit_file:
        path = Path(explicit_file).expanduser()
        if not path.is_file():
            raise ConfigurationError(f"RLFT_CONFIG={explicit_file}: no such file")
        found: tuple[Path, dict[str, Any]] | None = (path, read_toml(path, what="config file")[0])
    else:
        found = find_config_file((cwd or Path.cwd()).resolve())
    file, data = found if found else (None, {})

    profile = profile or env.get("RLFT_PROFILE") or None
    sources: dict[str, str] = {}
    chosen = dict(data)
    profiles = chosen.pop("profiles", {})
    if not isinstance(profiles, dict):
        raise ConfigurationError(
            f"{file}: profiles is {toml_type(profiles)}; write each profile as a "
            "[profiles.<name>] table"
        )
    if profile:
        if profile not in profiles:
            known = ", ".join(sorted(profiles)) or "none defined"
            where = str(file) if file else "no config file found"
            raise ConfigurationError(f"unknown profile {profile!r} ({where}; profiles: {known})")
        if not isinstance(profiles[profile], dict):
            raise ConfigurationError(
                f"{file}: profiles.{profile} is {toml_type(profiles[profile])}; write it as a "
                f"[profiles.{profile}] table"
            )
        chosen = _merge(chosen, profiles[profile])

    resolved = DEFAULT_PROVIDER
    sources["provider"] = "default"
    if "provider" in chosen:
        if not isinstance(chosen["provider"], str):
            raise ConfigurationError(
                f"{file}: provider is {toml_type(chosen['provider'])}; write the provider id as "
                'a string, e.g. provider = "local"'
            )
        resolved = chosen.pop("provider")
        sources["provider"] = f"{file}" + (f" [profiles.{profile}]" if profile else "")
    if env.get("RLFT_PROVIDER"):
        resolved, sources["provider"] = env["RLFT_PROVIDER"], "RLFT_PROVIDER"
    if provider:
        resolved, sources["provider"] = provider, "argument"

    sections = {key: value for key, value in chosen.items() if isinstance(value, dict)}
    unknown = sorted(key for key, value in chosen.items() if not isinstance(value, dict))
    if unknown:
        raise ConfigurationError(
            f"{file}: unknown top-level key(s) {', '.join(unknown)}; provider settings go in a "
            f"[<provider>] table, e.g. [{resolved}]"
        )
    return Config(provider=resolved, profile=profile, file=file, sections=sections, sources=sources)


def _merge(base: dict[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def build_settings(
    spec: ProviderSpec,
    config: Config,
    *,
    overrides: Mapping[str, Any] | ProviderSettings | None = None,
    environ: Mapping[str, str] | None = None,
) -> ProviderSettings:
    """Build a provider's settings: explicit ``overrides`` > env > the file's section > defaults.

    Raises:
        ConfigurationError: A secret in the file, or a value the settings model refuses (naming
            the key and where it came from).
    """
    if isinstance(overrides, ProviderSettings):
        register_settings(overrides)  # masked everywhere from now on
        return overrides
    env = os.environ if environ is None else environ
    model = spec.settings
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}

    file_section = dict(config.sections.get(spec.name, {}))
    for name in model.secret_fields:
        if name in file_section:
            var = model.env_fields.get(name, f"RLFT_{spec.name.upper()}_{name.upper()}")
            raise ConfigurationError(
                f"{config.file}: [{spec.name}] {name} is a secret and must not be written in a "
                f"file; remove it and set the environment variable {var} instead"
            )
    for key, value in file_section.items():
        values[key], origin[key] = value, f"{config.file} [{spec.name}]"

    prefix = f"RLFT_{spec.name.upper()}_"
    for name in model.model_fields:
        for env_var in (model.env_fields.get(name), prefix + name.upper()):
            if env_var and env.get(env_var):
                values[name], origin[name] = env[env_var], env_var
                break
    for key, value in (overrides or {}).items():
        values[key], origin[key] = value, "argument"

    try:
        settings = model.model_validate(values)
    except pydantic.ValidationError as exc:
        problems = []
        for error in exc.errors():
            key = ".".join(str(part) for part in error["loc"]) or "<settings>"
            source = origin.get(str(error["loc"][0]) if error["loc"] else "", "default")
            # Never echo the input: it may be a secret.
            problems.append(f"{key} (from {source}): {error['msg']}")
        raise ConfigurationError(
            f"invalid settings for provider {spec.name!r}: " + "; ".join(problems)
        ) from None
    register_settings(settings)  # every SecretStr is masked in errors, logs and the store
    return settings


def tracking_config(config: Config) -> tuple[list[str], str | None]:
    """The ``[tracking]`` table: ``(report_to, project)``; ``([], None)`` when absent.

    Raises:
        ConfigurationError: ``report_to`` not a string or an array of strings, or ``project`` not
            a string (naming the file and line).
    """
    table = config.sections.get("tracking", {})
    text = config.file.read_text(encoding="utf-8") if config.file and table else ""
    where = f"{config.file}:{key_line(text, 'tracking') or 1}" if config.file else "[tracking]"
    report_to = table.get("report_to", [])
    if isinstance(report_to, str):
        report_to = [report_to]
    if not isinstance(report_to, list) or not all(isinstance(n, str) for n in report_to):
        raise ConfigurationError(
            f"{where}: [tracking] report_to is {toml_type(report_to)}; write "
            'report_to = ["trackio"] (trackio, wandb, mlflow)'
        )
    project = table.get("project")
    if project is not None and not isinstance(project, str):
        raise ConfigurationError(
            f'{where}: [tracking] project is {toml_type(project)}; write project = "my-project"'
        )
    return list(report_to), project
