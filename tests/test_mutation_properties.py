"""Properties of the mutation over generated pods, checked with the independent `jsonpatch`.

The patch always applies, the result is stable under reinvocation, never carries a duplicate
env name or mount path, and only the token volume, env and volumeMounts ever change.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
from hypothesis import given, settings
from hypothesis import strategies as st

from webhook.admission import admit, parse_review
from webhook.identity import ServiceAccountIdentity
from webhook.mutation import mutate_pod
from webhook.patching import apply_patch
from webhook.settings import MutationSettings

MOUNT = "/var/run/secrets/eks.amazonaws.com/serviceaccount"
PREFIX = "eks.amazonaws.com/"
NAMES = ["app", "sidecar", "init", "proxy", "metrics"]
ENV_NAMES = [
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_STS_REGIONAL_ENDPOINTS",
    "HOME",
    "PATH",
]
TOUCHED_CONTAINER_FIELDS = ("env", "volumeMounts")

quick = settings(max_examples=200, deadline=None)

env_var = st.builds(
    lambda name, value: {"name": name, **value},
    st.sampled_from(ENV_NAMES),
    st.one_of(
        st.builds(lambda v: {"value": v}, st.sampled_from(["x", "arn:aws:iam::1:role/r", ""])),
        st.just({"valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}),
        st.just({}),
    ),
)
mount = st.builds(
    lambda name, path, read_only: {"name": name, "mountPath": path, **read_only},
    st.sampled_from(["aws-iam-token", "data", "config", "secrets"]),
    st.sampled_from([MOUNT, MOUNT + "/", "/data", "/config", "/etc/x"]),
    st.sampled_from([{}, {"readOnly": True}]),
)
container = st.builds(
    lambda name, env, mounts, extra: {
        "name": name,
        "image": "busybox",
        **({"env": env} if env is not None else {}),
        **({"volumeMounts": mounts} if mounts is not None else {}),
        **extra,
    },
    st.sampled_from(NAMES),
    st.one_of(st.none(), st.lists(env_var, max_size=5, unique_by=lambda e: e["name"])),
    st.one_of(
        st.none(), st.lists(mount, max_size=3, unique_by=lambda m: m["mountPath"].rstrip("/"))
    ),
    st.sampled_from([{}, {"restartPolicy": "Always"}, {"unknownField": [1, {"a": None}]}]),
)
volume = st.sampled_from(
    [
        {"name": "data", "emptyDir": {}},
        {"name": "config", "configMap": {"name": "c"}},
        {"name": "aws-iam-token", "hostPath": {"path": "/x"}},
        {
            "name": "aws-iam-token",
            "projected": {
                "sources": [
                    {
                        "serviceAccountToken": {
                            "audience": "sts.amazonaws.com",
                            "expirationSeconds": 3600,
                            "path": "token",
                        }
                    }
                ]
            },
        },
    ]
)
annotation_value = st.sampled_from(["3600", "0", "-1", "abc", "+900", "app", "app,init", ""])
pod_annotations = st.dictionaries(
    st.sampled_from([PREFIX + "token-expiration", PREFIX + "skip-containers", "other/x"]),
    annotation_value,
    max_size=3,
)


@st.composite
def pods(draw: st.DrawFn) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": draw(st.lists(container, min_size=1, max_size=3)),
        "serviceAccountName": "app",
    }
    if draw(st.booleans()):
        spec["initContainers"] = draw(st.lists(container, max_size=2))
    volumes = draw(
        st.one_of(st.none(), st.lists(volume, max_size=3, unique_by=lambda v: v["name"]))
    )
    if volumes is not None:
        spec["volumes"] = volumes
    selector = draw(st.sampled_from([None, {"kubernetes.io/os": "windows"}, {"disk": "ssd"}]))
    if selector is not None:
        spec["nodeSelector"] = selector
    metadata: dict[str, Any] = {"generateName": "p-", "labels": {"app": "x"}}
    annotations = draw(pod_annotations)
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


identities = st.builds(
    lambda role, extra: ServiceAccountIdentity("default", "app", {**role, **extra}),
    st.sampled_from(
        [
            {PREFIX + "role-arn": "arn:aws:iam::111122223333:role/app"},
            {PREFIX + "role-arn": "not-an-arn"},
            {},
        ]
    ),
    st.dictionaries(
        st.sampled_from(
            [PREFIX + "audience", PREFIX + "sts-regional-endpoints", PREFIX + "token-expiration"]
        ),
        st.sampled_from(["sts.amazonaws.com", "true", "false", "maybe", "7200", "10"]),
        max_size=3,
    ),
)
mutation_settings = st.builds(
    MutationSettings,
    token_expiration=st.sampled_from([86400, 3600, 1]),
    sts_regional_endpoint=st.booleans(),
    aws_default_region=st.sampled_from(["", "eu-west-1"]),
    token_mount_path=st.sampled_from([MOUNT, "/aws/token"]),
)


def _without(obj: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in keys}


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


@quick
@given(pods(), identities, mutation_settings)
def test_patch_applies_and_reinvocation_changes_nothing(
    pod: dict[str, Any], identity: ServiceAccountIdentity, mutation: MutationSettings
) -> None:
    before = copy.deepcopy(pod)
    result = mutate_pod(pod, identity, mutation)
    assert pod == before
    mutated = jsonpatch.apply_patch(pod, result.patch)
    assert apply_patch(pod, result.patch) == mutated  # our applier agrees with jsonpatch
    assert (result.outcome == "mutated") == bool(result.patch)
    again = mutate_pod(mutated, identity, mutation)
    assert again.patch == []


@quick
@given(pods(), identities, mutation_settings)
def test_no_duplicate_env_names_or_mount_paths(
    pod: dict[str, Any], identity: ServiceAccountIdentity, mutation: MutationSettings
) -> None:
    mutated = jsonpatch.apply_patch(pod, mutate_pod(pod, identity, mutation).patch)
    for c in _containers(mutated):
        names = [e["name"] for e in c.get("env", [])]
        assert len(names) == len(set(names))
        paths = [m["mountPath"].rstrip("/") for m in c.get("volumeMounts", [])]
        assert len(paths) == len(set(paths))
    volume_names = [v["name"] for v in mutated["spec"].get("volumes", [])]
    assert len(volume_names) == len(set(volume_names))


@quick
@given(pods(), identities, mutation_settings)
def test_only_token_volume_env_and_mounts_change_and_only_by_adding(
    pod: dict[str, Any], identity: ServiceAccountIdentity, mutation: MutationSettings
) -> None:
    mutated = jsonpatch.apply_patch(pod, mutate_pod(pod, identity, mutation).patch)
    assert _without(mutated, ("spec",)) == _without(pod, ("spec",))
    touched = ("volumes", "containers", "initContainers")
    assert _without(mutated["spec"], touched) == _without(pod["spec"], touched)
    old_volumes = pod["spec"].get("volumes", [])
    new_volumes = mutated["spec"].get("volumes", [])
    assert new_volumes[len(new_volumes) - len(old_volumes) :] == old_volumes
    assert all(
        v["name"] == "aws-iam-token" for v in new_volumes[: len(new_volumes) - len(old_volumes)]
    )
    assert len(_containers(mutated)) == len(_containers(pod))
    for old, new in zip(_containers(pod), _containers(mutated), strict=True):
        assert _without(new, TOUCHED_CONTAINER_FIELDS) == _without(old, TOUCHED_CONTAINER_FIELDS)
        for key in TOUCHED_CONTAINER_FIELDS:
            assert new.get(key, [])[: len(old.get(key, []))] == old.get(key, [])


@quick
@given(
    pods(),
    st.one_of(st.none(), identities),
    mutation_settings,
    st.sampled_from(["CREATE", "UPDATE"]),
)
def test_every_review_is_allowed_and_patched_only_when_something_changes(
    pod: dict[str, Any],
    identity: ServiceAccountIdentity | None,
    mutation: MutationSettings,
    operation: str,
) -> None:
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": "u", "kind": {"kind": "Pod"}, "operation": operation, "object": pod},
    }
    body, result = admit(parse_review(review), identity, mutation)
    response = body["response"]
    assert response["allowed"] is True and response["uid"] == "u"
    assert ("patch" in response) == ("patchType" in response) == bool(result.patch)
    if operation == "UPDATE":
        assert result.patch == [] and "warnings" not in response


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "spec",
                    "containers",
                    "initContainers",
                    "env",
                    "volumeMounts",
                    "volumes",
                    "name",
                    "mountPath",
                    "metadata",
                    "annotations",
                    "nodeSelector",
                    "value",
                ]
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@quick
@given(json_values, identities)
def test_arbitrary_json_never_raises_and_any_patch_applies(
    obj: Any, identity: ServiceAccountIdentity
) -> None:
    result = mutate_pod(obj, identity, MutationSettings())
    if result.patch:
        jsonpatch.apply_patch(obj, result.patch)
