"""The pure core: what the webhook does to one pod. No I/O, no globals.

INTERFACE STUB (issue 2 fills it in; issue 3's server codes against these signatures).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from webhook.identity import ServiceAccountIdentity
from webhook.settings import MutationSettings

Outcome = Literal["mutated", "skipped"]


@dataclass(frozen=True, slots=True)
class Mutation:
    """The answer for one pod: JSON Patch ops (empty when nothing changes) and the explanation."""

    patch: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    audit_annotations: dict[str, str] = field(default_factory=dict)
    outcome: Outcome = "skipped"
    reason: str = ""  # why the pod was not mutated, for logs and review; "" when mutated


def mutate_pod(
    pod: Mapping[str, Any],
    identity: ServiceAccountIdentity | None,
    settings: MutationSettings,
) -> Mutation:
    """identity None means the ServiceAccount is unknown (no mutation, a warning)."""
    raise NotImplementedError
