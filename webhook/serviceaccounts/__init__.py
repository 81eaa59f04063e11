"""Where ServiceAccount identities come from: the API (watch cache) or files (offline)."""

from __future__ import annotations

from typing import Protocol

from webhook.identity import ServiceAccountIdentity


class ServiceAccountSource(Protocol):
    """What the admission path asks of any source of ServiceAccounts."""

    async def get(self, namespace: str, name: str) -> ServiceAccountIdentity | None:
        """The identity, or None when the ServiceAccount does not exist (as far as we can tell)."""
        ...

    def is_ready(self) -> bool:
        """True once the source holds its first full list: what /readyz reports."""
        ...

    def __len__(self) -> int: ...
