"""What `review` does with its inputs: the production admission path, run on files.

Each input document becomes a Subject (the AdmissionReview the API server would send for it);
each Subject gets an Answer, from our own admit() or from a running webhook (review_remote), and
the answers are rendered as the AdmissionReview response, the mutated objects, the patch or a diff.
"""

from __future__ import annotations

import difflib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from webhook.admission import InvalidReview, PodRequest, admit, parse_review
from webhook.errors import CheckFailed, UsageError
from webhook.manifests import (
    POD_TEMPLATE_PATHS,
    Document,
    dig,
    json_pointer,
    kind_of,
    pod_from_template,
    pod_template_path,
)
from webhook.patching import PatchError, apply_patch
from webhook.serviceaccounts.offline import DEFAULT_NAMESPACE, OfflineServiceAccounts
from webhook.settings import MutationSettings

OUTPUTS = ("review", "pod", "patch", "diff")
REVIEW_USER = "irsa-webhook-review"


@dataclass(frozen=True, slots=True)
class Subject:
    """One thing to review: the AdmissionReview sent, and the object the user gave us."""

    label: str
    review: dict[str, Any]  # the AdmissionReview request body
    request: PodRequest
    original: Any  # what the user wrote: the pod, or the workload around the template
    template_path: tuple[str, ...]  # where the pod sits in `original` (empty for a pod)
    from_review: bool  # the input was an AdmissionReview


@dataclass(frozen=True, slots=True)
class Answer:
    """What the webhook (ours here, or a server's) answered for one subject."""

    response: dict[str, Any]  # the whole AdmissionReview response
    patch: list[dict[str, Any]]
    warnings: list[str]
    status: str  # one line for stderr


def subject_from(document: Document, namespace: str) -> Subject:
    """An AdmissionReview as is; a Pod or a workload's template wrapped as the API server would."""
    obj, label = document.obj, document.label
    kind = kind_of(obj)
    if kind == "AdmissionReview":
        try:
            request = parse_review(obj)
        except InvalidReview as exc:
            raise UsageError(f"{label}: {exc}") from None
        return Subject(label, obj, request, request.pod, (), from_review=True)

    if kind == "Pod":
        template_path: tuple[str, ...] = ()
        pod = obj
    elif (path := pod_template_path(obj)) is not None:
        template = dig(obj, path)
        if not isinstance(template, Mapping):
            where = ".".join(path)
            raise UsageError(f"{label}: {kind} has no pod template at {where}")
        name = dig(obj, ("metadata", "name"))
        template_path = path
        pod = pod_from_template(template, f"{name}-" if isinstance(name, str) and name else "")
    else:
        what = f"a {kind}" if kind else "a document without a kind"
        raise UsageError(
            f"{label}: cannot review {what}: expected an AdmissionReview, a Pod, "
            f"a ServiceAccount or one of {', '.join(POD_TEMPLATE_PATHS)}"
        )
    own_namespace = dig(obj, ("metadata", "namespace"))
    review = wrap_pod(
        pod,
        own_namespace if isinstance(own_namespace, str) and own_namespace else namespace,
        label,
    )
    return Subject(label, review, parse_review(review), obj, template_path, from_review=False)


def wrap_pod(pod: Mapping[str, Any], namespace: str, label: str) -> dict[str, Any]:
    """The AdmissionReview the API server would send for creating this pod (a dry run)."""
    resource = {"group": "", "version": "v1", "resource": "pods"}
    kind = {"group": "", "version": "v1", "kind": "Pod"}
    request: dict[str, Any] = {
        "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"irsa-webhook-review:{label}")),
        "kind": kind,
        "resource": resource,
        "requestKind": kind,
        "requestResource": resource,
        "namespace": namespace or DEFAULT_NAMESPACE,
        "operation": "CREATE",
        "userInfo": {"username": REVIEW_USER},
        "object": pod,
        "oldObject": None,
        "dryRun": True,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
    }
    name = dig(pod, ("metadata", "name"))
    if isinstance(name, str) and name:
        request["name"] = name
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def answer_locally(
    subject: Subject, accounts: OfflineServiceAccounts, settings: MutationSettings
) -> Answer:
    request = subject.request
    identity = (
        accounts.lookup(request.namespace, request.service_account)
        if request.wants_mutation
        else None
    )
    response, mutation = admit(request, identity, settings)
    status = (
        f"mutated (ServiceAccount {request.namespace}/{request.service_account})"
        if mutation.outcome == "mutated"
        else f"not mutated: {mutation.reason}"
    )
    return Answer(response, list(mutation.patch), list(mutation.warnings), status)


def rebased(patch: list[dict[str, Any]], template_path: tuple[str, ...]) -> list[dict[str, Any]]:
    """A pod patch moved under a workload's pod template, so it applies to what the user wrote."""
    if not template_path:
        return patch
    prefix = json_pointer(template_path)
    return [
        {**op, "path": prefix + op["path"]} if isinstance(op.get("path"), str) else op
        for op in patch
    ]


def patched(subject: Subject, patch: list[dict[str, Any]]) -> Any:
    try:
        return apply_patch(subject.original, rebased(patch, subject.template_path))
    except PatchError as exc:
        raise CheckFailed(f"{subject.label}: the patch does not apply: {exc}") from None


def as_yaml(obj: Any) -> str:
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, allow_unicode=True)


def render(output: str, subjects: list[Subject], answers: list[Answer]) -> str:
    parts: list[str] = []
    for subject, answer in zip(subjects, answers, strict=True):
        if output == "review":
            parts.append(json.dumps(answer.response, indent=2) + "\n")
        elif output == "patch":
            parts.append(json.dumps(rebased(answer.patch, subject.template_path), indent=2) + "\n")
        elif output == "pod":
            parts.append(as_yaml(patched(subject, answer.patch)))
        else:
            before = as_yaml(subject.original).splitlines(keepends=True)
            after = as_yaml(patched(subject, answer.patch)).splitlines(keepends=True)
            parts.append(
                "".join(
                    difflib.unified_diff(before, after, f"a/{subject.label}", f"b/{subject.label}")
                )
            )
    if output == "pod":
        return "---\n".join(parts)
    return "".join(parts)
