"""AdmissionReview v1 in and out, around the pure mutation.

Parsing is forgiving about the pod (an odd pod is still answered, allowed) and strict only about
the envelope: without a `request` object there is nothing to answer, and the server says 400.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from webhook.identity import ServiceAccountIdentity
from webhook.mutation import Mutation, mutate_pod, service_account_name
from webhook.settings import MutationSettings

DEFAULT_API_VERSION = "admission.k8s.io/v1"


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


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def parse_review(body: Any) -> PodRequest:
    """Raises InvalidReview for anything that is not an AdmissionReview with a request."""
    if not isinstance(body, Mapping):
        raise InvalidReview("an AdmissionReview must be a JSON object")
    request = body.get("request")
    if not isinstance(request, Mapping):
        raise InvalidReview("the AdmissionReview has no request object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise InvalidReview("the AdmissionReview request has no uid")

    obj = request.get("object")
    pod = obj if isinstance(obj, dict) else None
    metadata = _mapping(pod.get("metadata")) if pod else {}
    spec = _mapping(pod.get("spec")) if pod else {}
    return PodRequest(
        api_version=_text(body.get("apiVersion")) or DEFAULT_API_VERSION,
        uid=uid,
        operation=_text(request.get("operation")),
        kind=_text(_mapping(request.get("kind")).get("kind")),
        namespace=_text(request.get("namespace")) or _text(metadata.get("namespace")),
        service_account=service_account_name(spec),
        pod_name=_text(metadata.get("name")) or _text(metadata.get("generateName")),
        pod=pod,
        dry_run=request.get("dryRun") is True,
    )


def encode_patch(patch: list[dict[str, Any]]) -> str:
    """The response's `patch` field: base64 of the compact JSON."""
    return base64.b64encode(orjson.dumps(patch)).decode()


def admit(
    request: PodRequest,
    identity: ServiceAccountIdentity | None,
    settings: MutationSettings,
) -> tuple[dict[str, Any], Mutation]:
    """The AdmissionReview response body (always allowed) and the mutation behind it.

    A dry-run request gets exactly the answer a real one would: the API server discards it.
    """
    if request.wants_mutation and request.pod is not None:
        mutation = mutate_pod(request.pod, identity, settings, namespace=request.namespace)
    else:
        mutation = Mutation(reason=f"not a pod creation ({request.operation} {request.kind})")

    response: dict[str, Any] = {"uid": request.uid, "allowed": True}
    if mutation.patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = encode_patch(mutation.patch)
    if mutation.warnings:
        response["warnings"] = list(mutation.warnings)
    if mutation.audit_annotations:
        response["auditAnnotations"] = dict(mutation.audit_annotations)
    review = {"apiVersion": request.api_version, "kind": "AdmissionReview", "response": response}
    return review, mutation
