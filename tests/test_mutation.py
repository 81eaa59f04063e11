"""The pure mutation, case by case: the reference webhook's behaviour plus our explanations.

Every case applies the patch with the independent `jsonpatch` library and checks the pod a user
would get, not only the ops.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import pytest

from webhook.identity import ServiceAccountIdentity
from webhook.mutation import Mutation, mutate_pod
from webhook.settings import MutationSettings

ROLE = "arn:aws:iam::111122223333:role/app"
MOUNT = "/var/run/secrets/eks.amazonaws.com/serviceaccount"
TOKEN_FILE = MOUNT + "/token"
TOKEN_MOUNT = {"name": "aws-iam-token", "readOnly": True, "mountPath": MOUNT}
IDENTITY_ENV = [
    {"name": "AWS_ROLE_ARN", "value": ROLE},
    {"name": "AWS_WEB_IDENTITY_TOKEN_FILE", "value": TOKEN_FILE},
]


def token_volume(audience: str = "sts.amazonaws.com", seconds: int = 86400) -> dict[str, Any]:
    token = {"audience": audience, "expirationSeconds": seconds, "path": "token"}
    return {"name": "aws-iam-token", "projected": {"sources": [{"serviceAccountToken": token}]}}


def account(role: str | None = ROLE, **annotations: str) -> ServiceAccountIdentity:
    keys = {k.replace("_", "-"): v for k, v in annotations.items()}
    if role is not None:
        keys["role-arn"] = role
    return ServiceAccountIdentity(
        "default", "app", {f"eks.amazonaws.com/{k}": v for k, v in keys.items()}
    )


def container(name: str = "app", **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": "amazon/aws-cli", **fields}


def pod(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    annotations = spec.pop("annotations", None)
    metadata: dict[str, Any] = {"name": "p"}
    if annotations is not None:
        metadata["annotations"] = {f"eks.amazonaws.com/{k}": v for k, v in annotations.items()}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "serviceAccountName": "app",
            "containers": list(containers or [container()]),
            **spec,
        },
    }


def run(
    the_pod: dict[str, Any],
    identity: ServiceAccountIdentity | None = None,
    settings: MutationSettings | None = None,
) -> tuple[dict[str, Any], Mutation]:
    before = copy.deepcopy(the_pod)
    result = mutate_pod(the_pod, identity or account(), settings or MutationSettings())
    assert the_pod == before, "mutate_pod must not modify its input"
    return jsonpatch.apply_patch(the_pod, result.patch), result


# --- the reference's behaviour -----------------------------------------------------------------


def test_pod_without_volumes_gets_the_whole_volumes_list_then_env_and_mount() -> None:
    mutated, result = run(pod())
    assert [(op["op"], op["path"]) for op in result.patch] == [
        ("add", "/spec/volumes"),
        ("add", "/spec/containers"),
    ]
    assert mutated["spec"]["volumes"] == [token_volume()]
    assert mutated["spec"]["containers"][0]["env"] == IDENTITY_ENV
    assert mutated["spec"]["containers"][0]["volumeMounts"] == [TOKEN_MOUNT]
    assert result.outcome == "mutated" and result.reason == ""


def test_token_volume_is_prepended_to_existing_volumes() -> None:
    mutated, result = run(pod(volumes=[{"name": "data", "emptyDir": {}}]))
    assert result.patch[0]["path"] == "/spec/volumes/0"
    assert mutated["spec"]["volumes"] == [token_volume(), {"name": "data", "emptyDir": {}}]


@pytest.mark.parametrize(
    ("settings", "identity", "existing", "expected_added"),
    [
        pytest.param(
            MutationSettings(aws_default_region="eu-west-1"),
            account(),
            [],
            [
                "AWS_DEFAULT_REGION=eu-west-1",
                "AWS_REGION=eu-west-1",
                "AWS_ROLE_ARN",
                "AWS_WEB_IDENTITY_TOKEN_FILE",
            ],
            id="region flag adds both region variables before the identity",
        ),
        pytest.param(
            MutationSettings(sts_regional_endpoint=True, aws_default_region="cn-north-1"),
            account(),
            [],
            [
                "AWS_STS_REGIONAL_ENDPOINTS=regional",
                "AWS_DEFAULT_REGION=cn-north-1",
                "AWS_REGION=cn-north-1",
                "AWS_ROLE_ARN",
                "AWS_WEB_IDENTITY_TOKEN_FILE",
            ],
            id="regional STS comes first",
        ),
        pytest.param(
            MutationSettings(sts_regional_endpoint=True),
            account(sts_regional_endpoints="false"),
            [],
            ["AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"],
            id="ServiceAccount sts-regional-endpoints=false beats the flag",
        ),
        pytest.param(
            MutationSettings(),
            account(sts_regional_endpoints="T"),
            [],
            ["AWS_STS_REGIONAL_ENDPOINTS=regional", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"],
            id="Go booleans: T is true",
        ),
        pytest.param(
            MutationSettings(aws_default_region="seattle"),
            account(),
            [{"name": "AWS_REGION", "value": "paris"}],
            ["AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"],
            id="a region already set keeps both region variables out",
        ),
        pytest.param(
            MutationSettings(aws_default_region="us-west-2"),
            account(),
            [{"name": "AWS_WEB_IDENTITY_TOKEN_FILE", "value": "/elsewhere"}],
            ["AWS_DEFAULT_REGION=us-west-2", "AWS_REGION=us-west-2"],
            id="either identity variable set keeps both out",
        ),
    ],
)
def test_env_is_appended_in_the_reference_order(
    settings: MutationSettings,
    identity: ServiceAccountIdentity,
    existing: list[dict[str, str]],
    expected_added: list[str],
) -> None:
    mutated, _ = run(pod(container(env=list(existing))), identity, settings)
    env = mutated["spec"]["containers"][0]["env"]
    assert env[: len(existing)] == existing
    added = [
        e["name"] if e["name"].startswith(("AWS_ROLE", "AWS_WEB")) else f"{e['name']}={e['value']}"
        for e in env[len(existing) :]
    ]
    assert added == expected_added


def test_container_with_identity_region_and_sts_is_left_alone_even_without_mount() -> None:
    complete = container(
        env=[
            {"name": "AWS_REGION", "value": "cn-northwest-1"},
            {"name": "AWS_STS_REGIONAL_ENDPOINTS", "value": "regional"},
            {"name": "AWS_ROLE_ARN", "value": ROLE},
        ]
    )
    mutated, result = run(pod(complete), settings=MutationSettings(aws_default_region="x"))
    assert mutated["spec"]["containers"] == [complete]
    assert mutated["spec"]["volumes"] == [token_volume()]  # the reference adds it all the same
    assert "containers" not in result.audit_annotations


def test_init_containers_and_sidecars_are_mutated_and_skip_containers_is_honoured() -> None:
    sidecar = container("proxy", restartPolicy="Always")
    the_pod = pod(
        container("app"),
        container("metrics"),
        initContainers=[container("setup"), sidecar, container("migrate")],
        annotations={"skip-containers": "metrics,migrate"},
    )
    mutated, result = run(the_pod)
    assert [op["path"] for op in result.patch] == [
        "/spec/volumes",
        "/spec/containers",
        "/spec/initContainers",
    ]
    spec = mutated["spec"]
    assert spec["initContainers"][0]["env"] == IDENTITY_ENV
    assert spec["initContainers"][1]["env"] == IDENTITY_ENV
    assert spec["initContainers"][1]["restartPolicy"] == "Always"
    assert spec["initContainers"][2] == container("migrate")
    assert spec["containers"][1] == container("metrics")
    assert result.audit_annotations["containers"] == "setup,proxy,app"
    assert result.warnings == []


def test_skip_containers_naming_no_container_warns() -> None:
    _, result = run(pod(annotations={"skip-containers": "app,ghost"}))
    assert result.warnings == [
        'pod annotation eks.amazonaws.com/skip-containers names "ghost", '
        "which is not a container of this pod"
    ]


@pytest.mark.parametrize("os_key", ["kubernetes.io/os", "beta.kubernetes.io/os"])
def test_windows_pods_get_a_windows_token_path_but_the_same_mount(os_key: str) -> None:
    mutated, _ = run(pod(nodeSelector={os_key: "windows"}))
    (only,) = mutated["spec"]["containers"]
    assert only["env"][1] == {
        "name": "AWS_WEB_IDENTITY_TOKEN_FILE",
        "value": r"C:\var\run\secrets\eks.amazonaws.com\serviceaccount\token",
    }
    assert only["volumeMounts"] == [TOKEN_MOUNT]


def test_mount_path_flag_moves_mount_and_token_file() -> None:
    settings = MutationSettings(token_mount_path="/aws/token-dir/")
    mutated, _ = run(pod(), settings=settings)
    (only,) = mutated["spec"]["containers"]
    assert only["env"][1]["value"] == "/aws/token-dir/token"
    assert only["volumeMounts"][0]["mountPath"] == "/aws/token-dir/"


@pytest.mark.parametrize(
    ("flag", "sa_value", "pod_value", "seconds", "warned"),
    [
        (86400, None, None, 86400, False),
        (7200, None, None, 7200, False),
        (100, None, None, 600, False),  # the flag itself is clamped by MutationSettings
        (86400, "3600", None, 3600, False),
        (86400, "+4000", None, 4000, False),  # Go's ParseInt takes a sign
        (86400, "3600", "1800", 1800, False),  # the pod beats the ServiceAccount
        (86400, None, "0", 600, True),  # raised to the API server's minimum
        (86400, "-5", None, 600, True),
        (7200, "an hour", None, 7200, True),  # invalid: the flag applies
        (7200, "3600", " 900", 3600, True),  # invalid pod value: the ServiceAccount's applies
        (7200, "1_000", None, 7200, True),  # Python would accept it, Go does not
        (7200, None, "9999999999", 9999999999, True),  # injected as the reference does, warned
    ],
)
def test_token_expiration(
    flag: int, sa_value: str | None, pod_value: str | None, seconds: int, warned: bool
) -> None:
    identity = account(**({"token_expiration": sa_value} if sa_value is not None else {}))
    annotations = {"token-expiration": pod_value} if pod_value is not None else None
    mutated, result = run(
        pod(annotations=annotations), identity, MutationSettings(token_expiration=flag)
    )
    token = mutated["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]
    assert token["expirationSeconds"] == seconds
    assert result.audit_annotations["token-expiration"] == str(seconds)
    assert bool(result.warnings) == warned


def test_audience_annotation_beats_the_flag() -> None:
    mutated, result = run(
        pod(), account(audience="vault"), MutationSettings(token_audience="other")
    )
    assert mutated["spec"]["volumes"] == [token_volume("vault")]
    assert result.audit_annotations["audience"] == "vault"


def test_already_injected_token_volume_is_kept_and_containers_still_completed() -> None:
    done = container("app", env=list(IDENTITY_ENV), volumeMounts=[dict(TOKEN_MOUNT)])
    the_pod = pod(done, container("late"), volumes=[token_volume(seconds=3600)])
    mutated, result = run(the_pod)
    assert [op["path"] for op in result.patch] == ["/spec/containers"]
    assert mutated["spec"]["volumes"] == [token_volume(seconds=3600)]
    assert mutated["spec"]["containers"][1]["env"] == IDENTITY_ENV
    assert result.audit_annotations["containers"] == "late"


@pytest.mark.parametrize(
    "foreign",
    [
        {"name": "aws-iam-token", "hostPath": {"path": "/var/token"}},
        token_volume("vault"),
    ],
)
def test_a_foreign_volume_with_the_reserved_name_stops_the_mutation_with_a_warning(
    foreign: dict[str, Any],
) -> None:
    the_pod = pod(volumes=[foreign])
    mutated, result = run(the_pod)
    assert result.patch == [] and mutated == the_pod
    assert result.outcome == "skipped"
    assert "reserved for the projected token" in result.warnings[0]


def test_existing_mount_named_aws_iam_token_is_not_duplicated() -> None:
    custom = {"name": "aws-iam-token", "mountPath": "/custom"}
    mutated, _ = run(pod(container(volumeMounts=[custom])))
    assert mutated["spec"]["containers"][0]["volumeMounts"] == [custom]


# --- beyond the reference: explanations and safety ---------------------------------------------


def test_another_mount_at_the_token_path_is_kept_and_warned_about() -> None:
    clash = {"name": "secrets", "mountPath": MOUNT + "/"}
    mutated, result = run(pod(container(volumeMounts=[clash])))
    (only,) = mutated["spec"]["containers"]
    assert only["volumeMounts"] == [clash]
    assert only["env"] == IDENTITY_ENV
    assert result.warnings == [
        f'container "app" already mounts volume "secrets" at {MOUNT}: token not mounted there, '
        "the API server would reject a second mount at the same path"
    ]


def test_a_user_role_arn_that_differs_is_kept_and_warned_about() -> None:
    own = {"name": "AWS_ROLE_ARN", "value": "arn:aws:iam::999999999999:role/other"}
    mutated, result = run(pod(container(env=[own])))
    assert mutated["spec"]["containers"][0]["env"] == [own]
    assert "sets AWS_ROLE_ARN=" in result.warnings[0]
    assert "the container's value is kept" in result.warnings[0]


def test_malformed_role_arn_is_still_injected_with_a_warning() -> None:
    mutated, result = run(pod(), account("s3-reader"))
    assert mutated["spec"]["containers"][0]["env"][0] == {
        "name": "AWS_ROLE_ARN",
        "value": "s3-reader",
    }
    assert "is not an IAM role ARN" in result.warnings[0]


@pytest.mark.parametrize("arn", [ROLE, "arn:aws-cn:iam::111122223333:role/path/to/r@x+y=z,w.v-u"])
def test_well_formed_role_arns_raise_no_warning(arn: str) -> None:
    assert run(pod(), account(arn))[1].warnings == []


def test_invalid_sts_annotation_is_ignored_with_a_warning() -> None:
    mutated, result = run(
        pod(), account(sts_regional_endpoints="yes"), MutationSettings(sts_regional_endpoint=True)
    )
    assert mutated["spec"]["containers"][0]["env"][0]["name"] == "AWS_STS_REGIONAL_ENDPOINTS"
    assert result.warnings == [
        'ServiceAccount annotation eks.amazonaws.com/sts-regional-endpoints="yes" is not true '
        "or false: ignored, regional STS endpoint is true"
    ]


def test_service_account_without_role_is_skipped_quietly() -> None:
    _, result = run(pod(), account(None, audience="sts.amazonaws.com"))
    assert result.patch == [] and result.warnings == [] and result.audit_annotations == {}
    assert result.reason == "ServiceAccount app has no eks.amazonaws.com/role-arn annotation"


def test_unknown_service_account_is_skipped_with_a_warning() -> None:
    result = mutate_pod(pod(), None, MutationSettings(), namespace="shop")
    assert result.patch == [] and result.outcome == "skipped"
    assert result.warnings == ['ServiceAccount "shop/app" not found: no AWS credentials injected']


def test_annotation_prefix_is_configurable() -> None:
    identity = ServiceAccountIdentity("default", "app", {"irsa.example.com/role-arn": ROLE})
    assert run(pod(), identity)[1].patch == []
    mutated, _ = run(pod(), identity, MutationSettings(annotation_prefix="irsa.example.com"))
    assert mutated["spec"]["containers"][0]["env"] == IDENTITY_ENV


def test_audit_annotations_explain_a_mutation_with_keys_the_api_server_accepts() -> None:
    _, result = run(pod(container("a"), container("b")), account(audience="sts.amazonaws.com"))
    assert result.audit_annotations == {
        "role-arn": ROLE,
        "audience": "sts.amazonaws.com",
        "token-expiration": "86400",
        "containers": "a,b",
    }
    assert all("/" not in key for key in result.audit_annotations)


def test_unknown_fields_are_kept() -> None:
    odd = container(futureField={"x": 1}, env=[{"name": "A", "valueFrom": {"secretKeyRef": {}}}])
    the_pod = pod(odd, futureSpecField=True)
    the_pod["status"] = {"phase": "Pending"}
    mutated, _ = run(the_pod)
    assert mutated["spec"]["futureSpecField"] is True
    assert mutated["status"] == {"phase": "Pending"}
    assert mutated["spec"]["containers"][0]["futureField"] == {"x": 1}
    assert mutated["spec"]["containers"][0]["env"][0] == {
        "name": "A",
        "valueFrom": {"secretKeyRef": {}},
    }


def test_mutated_pod_reviewed_again_yields_no_change() -> None:
    the_pod = pod(
        container("a", volumeMounts=[{"name": "x", "mountPath": MOUNT}]),
        container("b"),
        initContainers=[container("i")],
        annotations={"skip-containers": "b"},
    )
    settings = MutationSettings(aws_default_region="eu-west-1", sts_regional_endpoint=True)
    once, first = run(the_pod, settings=settings)
    assert first.patch
    twice, second = run(once, settings=settings)
    assert second.patch == [] and twice == once
    assert second.reason == "already mutated: nothing to add"


@pytest.mark.parametrize(
    "odd_pod",
    [
        {},
        {"spec": None},
        {"spec": {"containers": None}},
        {"spec": {"containers": "nope", "volumes": 3}},
        {"spec": {"containers": [None, 7, {"env": "x"}, {"volumeMounts": {}}]}},
        {"spec": {"containers": [{"env": [None, {"value": "no name"}], "volumeMounts": [{}]}]}},
        {"metadata": {"annotations": {"eks.amazonaws.com/skip-containers": 5}}, "spec": {}},
        {"metadata": {"annotations": {"eks.amazonaws.com/skip-containers": 'a"b'}}},
        {"spec": {"nodeSelector": ["windows"], "volumes": [None, {"name": None}]}},
    ],
)
def test_odd_pods_never_fail_and_any_patch_applies(odd_pod: dict[str, Any]) -> None:
    mutated, result = run(odd_pod)
    assert isinstance(result.warnings, list)
    assert mutate_pod(mutated, account(), MutationSettings()).patch == []


def test_malformed_skip_containers_skips_nothing_with_a_warning() -> None:
    mutated, result = run(pod(annotations={"skip-containers": 'app,"un"closed'}))
    assert mutated["spec"]["containers"][0]["env"] == IDENTITY_ENV
    assert "is not a comma-separated list" in result.warnings[0]
