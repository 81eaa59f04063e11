"""AdmissionReview parsing and the response the API server receives."""

from __future__ import annotations

import base64
import json
from typing import Any

import jsonpatch
import pytest

from webhook.admission import InvalidReview, admit, parse_review
from webhook.identity import ServiceAccountIdentity
from webhook.settings import MutationSettings

ROLE = "arn:aws:iam::111122223333:role/app"
IDENTITY = ServiceAccountIdentity("shop", "app", {"eks.amazonaws.com/role-arn": ROLE})


def review(
    pod: Any = None, operation: str = "CREATE", kind: str = "Pod", **request: Any
) -> dict[str, Any]:
    if pod is None:
        pod = {"metadata": {"generateName": "web-"}, "spec": {"containers": [{"name": "a"}]}}
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "0df28fbd-5f5f-11e8-bc74-36e6bb280816",
            "kind": {"group": "", "version": "v1", "kind": kind},
            "operation": operation,
            "namespace": "shop",
            "object": pod,
            **request,
        },
    }


def test_parse_review_reads_what_the_server_needs() -> None:
    pod = {
        "metadata": {"name": "web-1", "namespace": "ignored"},
        "spec": {"serviceAccountName": "app", "containers": []},
    }
    request = parse_review(review(pod, dryRun=True))
    assert request.uid == "0df28fbd-5f5f-11e8-bc74-36e6bb280816"
    assert request.namespace == "shop"  # the request's namespace wins
    assert request.service_account == "app"
    assert request.pod_name == "web-1"
    assert request.dry_run is True
    assert request.wants_mutation


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"serviceAccountName": "a", "serviceAccount": "b"}, "a"),
        ({"serviceAccount": "b"}, "b"),
        ({}, "default"),
        ({"serviceAccountName": 7}, "default"),
    ],
)
def test_service_account_falls_back_to_the_deprecated_field_then_default(
    spec: dict[str, Any], expected: str
) -> None:
    assert parse_review(review({"spec": spec})).service_account == expected


def test_namespace_falls_back_to_the_pod_and_name_to_generate_name() -> None:
    body = review({"metadata": {"namespace": "ns", "generateName": "g-"}, "spec": {}})
    del body["request"]["namespace"]
    request = parse_review(body)
    assert (request.namespace, request.pod_name) == ("ns", "g-")


@pytest.mark.parametrize(
    "body",
    [
        [],
        "text",
        {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"},
        {"request": "x"},
        {"request": {"kind": {"kind": "Pod"}}},
        {"request": {"uid": 5}},
    ],
)
def test_anything_without_a_request_and_uid_is_invalid(body: Any) -> None:
    with pytest.raises(InvalidReview):
        parse_review(body)


def test_mutating_response_echoes_uid_and_carries_a_base64_json_patch() -> None:
    body = review()
    response_review, mutation = admit(parse_review(body), IDENTITY, MutationSettings())
    assert response_review["apiVersion"] == "admission.k8s.io/v1"
    assert response_review["kind"] == "AdmissionReview"
    response = response_review["response"]
    assert response["uid"] == body["request"]["uid"]
    assert response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    patch = json.loads(base64.b64decode(response["patch"]))
    assert patch == mutation.patch
    mutated = jsonpatch.apply_patch(body["request"]["object"], patch)
    assert mutated["spec"]["containers"][0]["env"][0] == {"name": "AWS_ROLE_ARN", "value": ROLE}
    assert response["auditAnnotations"]["role-arn"] == ROLE
    assert "warnings" not in response


def test_v1beta1_reviews_get_a_v1beta1_answer() -> None:
    body = review()
    body["apiVersion"] = "admission.k8s.io/v1beta1"
    response_review, _ = admit(parse_review(body), IDENTITY, MutationSettings())
    assert response_review["apiVersion"] == "admission.k8s.io/v1beta1"


def test_unknown_service_account_is_allowed_unpatched_with_a_warning() -> None:
    response_review, mutation = admit(parse_review(review()), None, MutationSettings())
    response = response_review["response"]
    assert response["allowed"] is True
    assert "patch" not in response and "patchType" not in response
    assert response["warnings"] == [
        'ServiceAccount "shop/default" not found: no AWS credentials injected'
    ]
    assert mutation.outcome == "skipped"


@pytest.mark.parametrize(
    ("operation", "kind", "pod"),
    [
        ("UPDATE", "Pod", None),
        ("DELETE", "Pod", None),
        ("CREATE", "Deployment", None),
        ("CREATE", "Pod", "not an object"),
    ],
)
def test_anything_but_a_pod_creation_is_allowed_untouched(
    operation: str, kind: str, pod: Any
) -> None:
    body = review(pod, operation, kind)
    request = parse_review(body)
    assert not request.wants_mutation
    response_review, mutation = admit(request, IDENTITY, MutationSettings())
    assert response_review["response"] == {"uid": body["request"]["uid"], "allowed": True}
    assert mutation.patch == []


def test_a_dry_run_gets_the_same_answer() -> None:
    real, _ = admit(parse_review(review()), IDENTITY, MutationSettings())
    dry, _ = admit(parse_review(review(dryRun=True)), IDENTITY, MutationSettings())
    assert dry == real


def test_the_response_is_json_serialisable_and_the_input_untouched() -> None:
    body = review()
    snapshot = json.dumps(body, sort_keys=True)
    response_review, _ = admit(parse_review(body), IDENTITY, MutationSettings())
    json.dumps(response_review)
    assert json.dumps(body, sort_keys=True) == snapshot
