"""AdmissionReview v1 in and out, around the pure mutation.

INTERFACE STUB (issue 2 fills it in; issue 3's server codes against these signatures).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from webhook.identity import ServiceAccountIdentity
from webhook.mutation import Mutation
from webhook.settings import MutationSettings


class InvalidReview(ValueError):
    """The body is not a JSON object carrying a `request`: the server answers 400."""


@dataclass(frozen=True, slots=True)
class PodRequest:
    """What the webhook needs from one AdmissionReview request."""

    api_version: str  # of the AdmissionReview, echoed in the response
    uid: str
    operation: str
    kind: str  # request.kind.kind
    namespace: str  # request.namespace, else the pod's metadata.namespace
    service_account: str  # spec.serviceAccountName, else spec.serviceAccount, else "default"
    pod_name: str  # metadata.name, else generateName, for logs
    pod: dict[str, Any] | None  # request.object when it is an object
    dry_run: bool

    @property
    def wants_mutation(self) -> bool:
        """CREATE of a Pod: the only request that needs a ServiceAccount lookup."""
        return self.operation == "CREATE" and self.kind == "Pod" and self.pod is not None


def parse_review(body: Any) -> PodRequest:
    """Raises InvalidReview for anything that is not an AdmissionReview with a request."""
    raise NotImplementedError


def admit(
    request: PodRequest,
    identity: ServiceAccountIdentity | None,
    settings: MutationSettings,
) -> tuple[dict[str, Any], Mutation]:
    """The AdmissionReview response body (always allowed) and the mutation behind it."""
    raise NotImplementedError
