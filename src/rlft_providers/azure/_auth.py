"""Entra ID tokens for Azure: fetched through ``azure.identity.aio``, cached, refreshed early.

``azure.identity`` is imported only when a token is first needed, so an API-key user never needs
it; without it, Entra ID auth raises ``MissingDependencyError`` with ``pip install 'rlft[azure]'``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import anyio

from rlft.exceptions import ConfigurationError, MissingDependencyError, ProviderConnectionError
from rlft.provider import register_secret

__all__ = ["AsyncTokenCredential", "CredentialSource", "EntraToken"]


class AsyncTokenCredential(Protocol):
    """What rlft needs of an ``azure.identity.aio`` credential."""

    async def get_token(self, *scopes: str) -> Any:
        """Return an ``AccessToken`` (``token``, ``expires_on`` in epoch seconds)."""
        ...

    async def close(self) -> None:
        """Release the credential's transports."""
        ...


class CredentialSource:
    """One credential shared by every token an Azure provider needs (data plane, ARM).

    Args:
        credential: An async credential to use; ``None`` creates
            ``azure.identity.aio.DefaultAzureCredential()`` on first use (closed by ``aclose``).
    """

    def __init__(self, credential: AsyncTokenCredential | None = None) -> None:
        self._credential = credential
        self._owned = False

    def get(self) -> AsyncTokenCredential:
        """The credential, created on first use.

        Raises:
            MissingDependencyError: ``azure-identity`` is not installed.
        """
        if self._credential is None:
            try:
                from azure.identity.aio import DefaultAzureCredential
            except ImportError as exc:
                raise MissingDependencyError(
                    "Azure Entra ID auth", package="azure-identity", extra="azure"
                ) from exc
            self._credential = DefaultAzureCredential()
            self._owned = True
        return self._credential

    async def aclose(self) -> None:
        """Close the credential if this source created it. Idempotent."""
        credential, owned = self._credential, self._owned
        if owned:
            self._credential, self._owned = None, False
        if credential is not None and owned:
            await credential.close()


class EntraToken:
    """A cached bearer token for one scope, refreshed ``refresh_margin`` seconds before expiry.

    Args:
        provider: The provider id errors carry.
        scope: The token scope (``https://cognitiveservices.azure.com/.default``).
        source: Where the credential comes from (shared between scopes).
        refresh_margin: Seconds before expiry to fetch a new token.
        clock: The wall clock (epoch seconds); tests move it.
    """

    def __init__(
        self,
        *,
        provider: str,
        scope: str,
        source: CredentialSource,
        refresh_margin: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._provider = provider
        self.scope = scope
        self._source = source
        self._margin = refresh_margin
        self._clock = clock
        self._token = ""
        self._expires_on = 0.0
        self._lock = anyio.Lock()

    def __repr__(self) -> str:  # never the token
        return f"EntraToken(scope={self.scope!r})"

    def _fresh(self) -> bool:
        return bool(self._token) and self._clock() < self._expires_on - self._margin

    async def token(self) -> str:
        """The current token, fetched or refreshed when it is missing or about to expire."""
        if self._fresh():
            return self._token
        async with self._lock:  # one refresh at a time; the others reuse its result
            if not self._fresh():
                access = await self._fetch()
                self._token = str(access.token)
                register_secret(self._token)  # masked in rlft's errors, logs and store
                self._expires_on = float(access.expires_on)
        return self._token

    async def headers(self) -> dict[str, str]:
        """``{"Authorization": "Bearer <token>"}``, for ``OpenAICompatClient(auth=...)``."""
        return {"Authorization": f"Bearer {await self.token()}"}

    async def _fetch(self) -> Any:
        credential = self._source.get()
        try:
            return await credential.get_token(self.scope)
        except Exception as exc:
            if _is_auth_failure(exc):
                raise ConfigurationError(
                    f"provider {self._provider!r}: no Entra ID credential could get a token for "
                    f"{self.scope} ({type(exc).__name__}). Sign in (`az login`, a managed "
                    f"identity, or AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET), or set "
                    f"AZURE_OPENAI_API_KEY to use the resource key instead"
                ) from exc
            raise ProviderConnectionError(
                f"could not get an Entra ID token for {self.scope}: "
                f"{type(exc).__name__}: {str(exc)[:300]}",
                provider=self._provider,
            ) from exc


def _is_auth_failure(exc: Exception) -> bool:
    try:
        from azure.core.exceptions import ClientAuthenticationError
    except ImportError:  # an injected credential without azure-core installed
        return False
    return isinstance(exc, ClientAuthenticationError)
