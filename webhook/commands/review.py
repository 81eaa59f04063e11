"""`irsa-webhook review`: what the webhook would do to pods, with no cluster.

Locally it runs the production code path (parse_review, admit) against ServiceAccounts read from
files; with --server it asks a running webhook instead (dry run) and shows its answer the same way.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import difflib
import json
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
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
    read_documents,
)
from webhook.patching import PatchError, apply_patch
from webhook.serviceaccounts.offline import DEFAULT_NAMESPACE, OfflineServiceAccounts
from webhook.settings import MutationSettings, add_mutation_flags, mutation_settings_from_args

OUTPUTS = ("review", "pod", "patch", "diff")
DEFAULT_SERVER_PATH = "/mutate"
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


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "review",
        help="show what the webhook does to pods in manifests or AdmissionReviews (no cluster)",
        description="Review pods the way the webhook would, offline (--service-accounts) or by "
        "asking a running webhook (--server). INPUT: files or - (stdin), JSON or YAML, "
        "multi-document or List: AdmissionReviews, Pods, and the pod templates of "
        + ", ".join(POD_TEMPLATE_PATHS)
        + ". ServiceAccounts among the inputs are used for lookups too.",
    )
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="default: - (stdin)")
    parser.add_argument(
        "--service-accounts",
        action="append",
        default=[],
        metavar="FILE",
        help="ServiceAccounts to look pods up in (repeatable; other kinds are ignored)",
    )
    parser.add_argument(
        "--namespace",
        default="",
        help=f"namespace of manifests that name none (default: {DEFAULT_NAMESPACE})",
    )
    parser.add_argument(
        "-o",
        "--output",
        choices=OUTPUTS,
        help="review: the AdmissionReview response as the server returns it (default for "
        "AdmissionReview input); pod: mutated objects as YAML; patch: the JSON Patch; "
        "diff: unified diff of the YAML (default for manifests)",
    )
    remote = parser.add_argument_group("remote (ask a running webhook instead, as a dry run)")
    remote.add_argument(
        "--server", metavar="URL", help="https URL of the webhook (path default /mutate)"
    )
    remote.add_argument("--ca-file", metavar="CA", help="CA bundle to verify the server with")
    remote.add_argument(
        "--timeout", type=float, default=10.0, metavar="SECONDS", help="per request (default 10)"
    )
    add_mutation_flags(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = mutation_settings_from_args(args)
    if not args.inputs and sys.stdin.isatty():
        raise UsageError("review needs INPUT files (or - to read a pipe)")
    documents = read_documents(args.inputs or ["-"])
    accounts = OfflineServiceAccounts.from_files(args.service_accounts, settings.annotation_prefix)
    subjects: list[Subject] = []
    for document in documents:
        if kind_of(document.obj) == "ServiceAccount":
            accounts.add_document(document)
        else:
            subjects.append(subject_from(document, args.namespace))
    if not subjects:
        raise UsageError("nothing to review: no AdmissionReview, Pod or workload in the input")

    if args.server:
        client = RemoteWebhook(args.server, args.ca_file, args.timeout)
        answers = [client.ask(subject) for subject in subjects]
    else:
        if not args.service_accounts and not len(accounts):
            raise UsageError("review needs --service-accounts FILE (or --server URL)")
        answers = [answer_locally(subject, accounts, settings) for subject in subjects]

    output = args.output or (
        "review" if all(subject.from_review for subject in subjects) else "diff"
    )
    for subject, answer in zip(subjects, answers, strict=True):
        for warning in answer.warnings:
            print(f"Warning: {subject.label}: {warning}", file=sys.stderr)
        print(f"{subject.label}: {answer.status}", file=sys.stderr)
    sys.stdout.write(render(output, subjects, answers))
    return 0


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


class RemoteWebhook:
    """Sends AdmissionReviews (dry run) to a running webhook over HTTPS, TLS 1.2 at least."""

    def __init__(self, url: str, ca_file: str | None, timeout: float) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme != "https" or not parsed.hostname:
            raise UsageError(f"--server {url}: expected an https:// URL")
        if parsed.path in ("", "/"):
            parsed = parsed._replace(path=DEFAULT_SERVER_PATH)
        self.url = urllib.parse.urlunsplit(parsed)
        try:
            self.context = ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"--ca-file {ca_file}: cannot load a CA bundle: {exc}") from None
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.timeout = timeout

    def ask(self, subject: Subject) -> Answer:
        body = dict(subject.review)
        body["request"] = {**subject.review["request"], "dryRun": True}
        reply = self._post(json.dumps(body).encode(), subject.label)
        response = reply.get("response") if isinstance(reply, dict) else None
        if not isinstance(response, dict):
            raise CheckFailed(f"{self.url}: answer for {subject.label} has no response object")
        if response.get("uid") != subject.request.uid:
            raise CheckFailed(f"{self.url}: answer for {subject.label} carries the wrong uid")
        patch = decode_patch(response, f"{self.url}: answer for {subject.label}")
        warnings = [str(w) for w in response.get("warnings") or []]
        if response.get("allowed") is not True:
            message = dig(response, ("status", "message")) or "no reason given"
            status = f"DENIED by the server: {message}"
        else:
            status = "mutated" if patch else "not mutated"
        return Answer(reply, patch, warnings, f"{status} (answer from {self.url})")

    def _post(self, data: bytes, label: str) -> Any:
        request = urllib.request.Request(
            self.url, data=data, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self.context) as r:
                raw = r.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read(200).decode(errors="replace").strip().splitlines()
            reason = detail[0] if detail else exc.reason
            raise CheckFailed(f"{self.url}: HTTP {exc.code} for {label}: {reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CheckFailed(f"{self.url}: cannot reach the webhook: {reason}") from None
        try:
            return json.loads(raw)
        except ValueError:
            raise CheckFailed(f"{self.url}: answer for {label} is not JSON") from None


def decode_patch(response: Mapping[str, Any], where: str) -> list[dict[str, Any]]:
    encoded = response.get("patch")
    if not encoded:
        return []
    if response.get("patchType") != "JSONPatch":
        raise CheckFailed(f"{where}: patchType is {response.get('patchType')!r}, not JSONPatch")
    try:
        patch = json.loads(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError, TypeError):
        raise CheckFailed(f"{where}: the patch is not base64 JSON") from None
    if not isinstance(patch, list):
        raise CheckFailed(f"{where}: the patch is not a list of operations")
    return patch


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
