"""ServiceAccounts from files: what `review --service-accounts` (and `serve --service-accounts`)
looks pods up in when there is no cluster to ask.

Ready at once: the files are the whole truth. Objects of other kinds in the same files are
ignored, so a whole application bundle can serve as its own ServiceAccount source.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from webhook.errors import UsageError
from webhook.identity import ServiceAccountIdentity
from webhook.manifests import Document, kind_of, read_documents
from webhook.settings import DEFAULT_ANNOTATION_PREFIX

DEFAULT_NAMESPACE = "default"


class OfflineServiceAccounts:
    """A fixed set of ServiceAccounts by namespace and name: a ServiceAccountSource."""

    def __init__(self, annotation_prefix: str = DEFAULT_ANNOTATION_PREFIX) -> None:
        self._prefix = annotation_prefix
        self._accounts: dict[tuple[str, str], ServiceAccountIdentity] = {}

    @classmethod
    def from_files(
        cls, paths: Iterable[str], annotation_prefix: str = DEFAULT_ANNOTATION_PREFIX
    ) -> OfflineServiceAccounts:
        """Raises UsageError naming the file and document of anything unreadable."""
        source = cls(annotation_prefix)
        for document in read_documents(list(paths)):
            if kind_of(document.obj) == "ServiceAccount":
                source.add_document(document)
        return source

    def add_document(self, document: Document) -> ServiceAccountIdentity:
        obj = document.obj
        metadata = obj.get("metadata") if isinstance(obj, Mapping) else None
        name = metadata.get("name") if isinstance(metadata, Mapping) else None
        if not isinstance(name, str) or not name:
            raise UsageError(f"{document.label}: ServiceAccount has no metadata.name")
        return self.add(obj)

    def add(self, obj: Mapping[str, Any]) -> ServiceAccountIdentity:
        """Add (or replace) one ServiceAccount object; a missing namespace means "default"."""
        identity = ServiceAccountIdentity.from_object(obj, self._prefix)
        if not identity.namespace:
            identity = ServiceAccountIdentity(
                DEFAULT_NAMESPACE, identity.name, identity.annotations, identity.resource_version
            )
        self._accounts[(identity.namespace, identity.name)] = identity
        return identity

    async def get(self, namespace: str, name: str) -> ServiceAccountIdentity | None:
        return self.lookup(namespace, name)

    def lookup(self, namespace: str, name: str) -> ServiceAccountIdentity | None:
        """The synchronous lookup behind get(), for callers outside an event loop."""
        return self._accounts.get((namespace, name))

    def is_ready(self) -> bool:
        return True

    def __len__(self) -> int:
        return len(self._accounts)
