"""What the webhook keeps of a ServiceAccount: its name and the annotations under the prefix."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ServiceAccountIdentity:
    """A ServiceAccount as far as pod mutation cares.

    Only annotations under the configured prefix are kept: at 100k ServiceAccounts the rest is
    memory spent for nothing. An identity with no annotations still matters: it says the
    ServiceAccount exists and has no role, which is different from "not seen yet".
    """

    namespace: str
    name: str
    annotations: Mapping[str, str] = field(default_factory=dict)
    resource_version: str = ""

    @classmethod
    def from_object(cls, obj: Mapping[str, Any], annotation_prefix: str) -> ServiceAccountIdentity:
        """Build from a raw ServiceAccount object (parsed JSON or YAML), keeping only our keys."""
        metadata = obj.get("metadata") or {}
        raw = metadata.get("annotations") or {}
        wanted = annotation_prefix + "/"
        kept = (
            {k: str(v) for k, v in raw.items() if isinstance(k, str) and k.startswith(wanted)}
            if isinstance(raw, Mapping)
            else {}
        )
        return cls(
            namespace=str(metadata.get("namespace") or ""),
            name=str(metadata.get("name") or ""),
            annotations=kept,
            resource_version=str(metadata.get("resourceVersion") or ""),
        )
