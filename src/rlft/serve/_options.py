"""What a server runs with: keys, limits, the backend choice, served graders. No Starlette here."""

from __future__ import annotations

import fnmatch
import hashlib
import ipaddress
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlft.exceptions import ConfigurationError

__all__ = ["ApiKey", "ServeOptions", "is_loopback", "load_keys"]

KEYS_ENV = "RLFT_SERVE_API_KEYS"
ADMIN_PREFIX = "admin:"


@dataclass(frozen=True)
class ApiKey:
    """One accepted key, kept only as its SHA-256: the raw key is never stored or logged.

    Attributes:
        digest: Hex SHA-256 of the key.
        admin: Sees every job and file, not only its own.
    """

    digest: str
    admin: bool = False

    @property
    def owner(self) -> str:
        """The short, non-secret id jobs and files of this key are labelled with."""
        return self.digest[:16]

    @classmethod
    def from_secret(cls, secret: str, *, admin: bool = False) -> ApiKey:
        """Hash a raw key."""
        return cls(digest=hash_key(secret), admin=admin)


def hash_key(secret: str) -> str:
    """The SHA-256 hex digest of a key (what a keys file may hold as ``sha256:<hex>``)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _parse(entry: str, where: str) -> ApiKey | None:
    entry = entry.strip()
    if not entry or entry.startswith("#"):
        return None
    admin = entry.startswith(ADMIN_PREFIX)
    if admin:
        entry = entry[len(ADMIN_PREFIX) :].strip()
    if entry.startswith("sha256:"):
        digest = entry[len("sha256:") :].lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ConfigurationError(f"{where}: a sha256: key needs 64 hex digits")
        return ApiKey(digest=digest, admin=admin)
    if len(entry) < 8:
        raise ConfigurationError(f"{where}: an API key needs at least 8 characters")
    return ApiKey.from_secret(entry, admin=admin)


def load_keys(
    *, environ: Mapping[str, str] | None = None, keys_file: str | Path | None = None
) -> tuple[ApiKey, ...]:
    """Keys from ``RLFT_SERVE_API_KEYS`` (comma-separated) and a keys file (one per line).

    An entry ``admin:KEY`` is an admin key; ``sha256:HEX`` is an already hashed key, so a keys
    file need not hold secrets at all. ``#`` starts a comment line in the file.

    Raises:
        ConfigurationError: An unreadable file or a malformed entry (named, never echoed).
    """
    env = os.environ if environ is None else environ
    keys: list[ApiKey] = []
    for index, entry in enumerate(env.get(KEYS_ENV, "").split(",")):
        key = _parse(entry, f"{KEYS_ENV} entry {index + 1}")
        if key is not None:
            keys.append(key)
    if keys_file is not None:
        path = Path(keys_file).expanduser()
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigurationError(f"{path}: cannot read the keys file: {exc.strerror}") from None
        for number, line in enumerate(lines, start=1):
            key = _parse(line, f"{path}:{number}")
            if key is not None:
                keys.append(key)
    return tuple(keys)


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach (``localhost`` included)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServeOptions:
    """Everything a server is built from.

    Attributes:
        provider: The default backend id (``None``: the configured one).
        models: Model-name glob -> backend id (``{"rlft/*": "local"}``); first match wins.
        keys: The accepted API keys (hashed).
        graders: Name -> grader file served at ``/graders/NAME/score``.
        home: Where uploaded files and job requests are kept (default: ``RLFT_HOME/serve``).
        store: The job store file (default: rlft's default store).
        cwd: Where ``rlft.toml`` is looked for.
        max_body_bytes: Largest request body; bigger ones get 413.
        rate: Requests per second per key (a token bucket of ``burst``); over it gets 429.
        burst: The bucket size.
        poll_interval: Seconds between the watcher's polls (default: each backend's suggestion,
            at least 0.2 s).
        grader_timeout: Seconds one endpoint-grader call may take (Azure allows 10 minutes).
    """

    provider: str | None = None
    models: Mapping[str, str] = field(default_factory=dict)
    keys: Sequence[ApiKey] = ()
    graders: Mapping[str, Path] = field(default_factory=dict)
    home: Path | None = None
    store: Path | None = None
    cwd: Path | None = None
    max_body_bytes: int = 64 * 1024 * 1024
    rate: float = 50.0
    burst: int = 100
    poll_interval: float | None = None
    grader_timeout: float = 600.0
    guards: Sequence[Any] = ()
    """``rlft.guards`` guards applied to every job the server watches; trips show on the
    dashboard."""

    def backend_for(self, model: str | None) -> str | None:
        """The backend a model name maps to, else the default provider."""
        if model:
            for pattern, provider in self.models.items():
                if fnmatch.fnmatchcase(model, pattern):
                    return provider
        return self.provider
