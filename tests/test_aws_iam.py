"""`aws create-provider` and `aws create-role` as a user runs them: the CLI in a subprocess, real
boto3 over HTTP to moto's server on loopback, and IAM's state read back with boto3."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from aws_support import (
    ACCOUNT,
    Moto,
    assert_one_line_error,
    isolated_aws_env,
    moto_env,
    moto_server,
)
from conftest import run_cli

ISSUER = "https://oidc.example.com/cluster-1"
PROVIDER_ARN = f"arn:aws:iam::{ACCOUNT}:oidc-provider/oidc.example.com/cluster-1"
THUMB_A = "9e99a48a9960b14926bb7f3b02e22da2b0ab7280"
THUMB_B = "0123456789abcdef0123456789abcdef01234567"
ROLE = "s3-reader"


@pytest.fixture(scope="module")
def moto_module() -> Iterator[Moto]:
    with moto_server() as moto:
        yield moto


@pytest.fixture
def moto(moto_module: Moto) -> Moto:
    moto_module.reset()
    return moto_module


@pytest.fixture
def env(moto: Moto, tmp_path: Path) -> dict[str, str]:
    return moto_env(moto, tmp_path)


def expected_trust(provider: str, sub: str, aud: str = "sts.amazonaws.com") -> dict[str, Any]:
    """Written out by hand, as IAM documents it, rather than from our own builder."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        "oidc.example.com/cluster-1:sub": sub,
                        "oidc.example.com/cluster-1:aud": aud,
                    }
                },
            }
        ],
    }


def create_provider(env: dict[str, str], *extra: str) -> str:
    result = run_cli("aws", "create-provider", "--issuer", ISSUER, *extra, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def create_role(env: dict[str, str], *extra: str, service_account: str = "reader") -> Any:
    return run_cli(
        "aws", "create-role", "--role-name", ROLE, "--issuer", ISSUER,
        "--namespace", "team-a", "--service-account", service_account, *extra,
        env=env,
    )  # fmt: skip


# create-provider ----------------------------------------------------------------------------


def test_create_provider_then_again_changes_nothing(moto: Moto, env: dict[str, str]) -> None:
    openssl_style = ":".join(THUMB_A[i : i + 2] for i in range(0, 40, 2)).upper()
    assert create_provider(env, "--thumbprint", openssl_style) == PROVIDER_ARN
    iam = moto.client("iam")
    provider = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=PROVIDER_ARN)
    assert provider["Url"] == "oidc.example.com/cluster-1"
    assert provider["ClientIDList"] == ["sts.amazonaws.com"]
    assert provider["ThumbprintList"] == [THUMB_A]

    again = run_cli("aws", "create-provider", "--issuer", ISSUER, "--thumbprint", THUMB_A, env=env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == PROVIDER_ARN
    assert "up to date" in again.stderr
    assert len(iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]) == 1


def test_existing_provider_gets_missing_client_ids_and_new_thumbprints(
    moto: Moto, env: dict[str, str]
) -> None:
    create_provider(env, "--thumbprint", THUMB_A, "--client-id", "legacy-client")
    result = run_cli(
        "aws", "create-provider", "--issuer", ISSUER, "--client-id", "sts.amazonaws.com",
        "--client-id", "legacy-client", "--client-id", "argo", "--thumbprint", THUMB_B,
        "--thumbprint", THUMB_A, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == PROVIDER_ARN
    provider = moto.client("iam").get_open_id_connect_provider(
        OpenIDConnectProviderArn=PROVIDER_ARN
    )
    assert sorted(provider["ClientIDList"]) == ["argo", "legacy-client", "sts.amazonaws.com"]
    assert sorted(provider["ThumbprintList"]) == sorted([THUMB_A, THUMB_B])


def test_client_ids_not_asked_for_are_kept_and_named(moto: Moto, env: dict[str, str]) -> None:
    create_provider(env, "--thumbprint", THUMB_A, "--client-id", "legacy-client")
    result = run_cli("aws", "create-provider", "--issuer", ISSUER, "--thumbprint", THUMB_A, env=env)
    assert result.returncode == 0, result.stderr
    assert "legacy-client" in result.stderr
    provider = moto.client("iam").get_open_id_connect_provider(
        OpenIDConnectProviderArn=PROVIDER_ARN
    )
    assert sorted(provider["ClientIDList"]) == ["legacy-client", "sts.amazonaws.com"]


def test_provider_dry_run_prints_the_calls_and_makes_none(moto: Moto, env: dict[str, str]) -> None:
    result = run_cli(
        "aws", "create-provider", "--issuer", ISSUER, "--thumbprint", THUMB_A, "--dry-run", env=env
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        {
            "service": "iam",
            "operation": "CreateOpenIDConnectProvider",
            "parameters": {
                "Url": ISSUER,
                "ClientIDList": ["sts.amazonaws.com"],
                "ThumbprintList": [THUMB_A],
            },
        }
    ]
    assert PROVIDER_ARN in result.stderr
    iam = moto.client("iam")
    assert iam.list_open_id_connect_providers()["OpenIDConnectProviderList"] == []

    create_provider(env, "--thumbprint", THUMB_A)
    update = run_cli(
        "aws", "create-provider", "--issuer", ISSUER, "--client-id", "argo", "--thumbprint",
        THUMB_B, "--dry-run", env=env,
    )  # fmt: skip
    assert update.returncode == 0, update.stderr
    assert json.loads(update.stdout) == [
        {
            "service": "iam",
            "operation": "AddClientIDToOpenIDConnectProvider",
            "parameters": {"OpenIDConnectProviderArn": PROVIDER_ARN, "ClientID": "argo"},
        },
        {
            "service": "iam",
            "operation": "UpdateOpenIDConnectProviderThumbprint",
            "parameters": {"OpenIDConnectProviderArn": PROVIDER_ARN, "ThumbprintList": [THUMB_B]},
        },
    ]
    provider = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=PROVIDER_ARN)
    assert provider["ClientIDList"] == ["sts.amazonaws.com"]
    assert provider["ThumbprintList"] == [THUMB_A]


def test_bad_thumbprint_is_one_line_before_any_aws_call(tmp_path: Path) -> None:
    # No credentials and no endpoint: reaching AWS would fail differently.
    result = run_cli(
        "aws", "create-provider", "--issuer", ISSUER, "--thumbprint", "abc123",
        env=isolated_aws_env(tmp_path),
    )  # fmt: skip
    assert "--thumbprint 'abc123'" in assert_one_line_error(result, 2)


# create-role --------------------------------------------------------------------------------


def test_create_role_trust_policy_policies_and_manifest(moto: Moto, env: dict[str, str]) -> None:
    iam = moto.client("iam")
    managed = iam.create_policy(PolicyName="extra", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"}]}
    ))["Policy"]["Arn"]  # fmt: skip
    create_provider(env, "--thumbprint", THUMB_A)
    result = create_role(env, "--policy-arn", managed, "--s3-bucket-prefix", "acme-data-")
    assert result.returncode == 0, result.stderr
    role_arn = f"arn:aws:iam::{ACCOUNT}:role/{ROLE}"
    assert result.stdout.splitlines()[0] == f"# role {role_arn}"
    manifest = yaml.safe_load(result.stdout)
    assert manifest == {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": "reader",
            "namespace": "team-a",
            "annotations": {"eks.amazonaws.com/role-arn": role_arn},
        },
    }
    kubernetes_validate.validate(manifest, "1.30.0", strict=True)

    role = iam.get_role(RoleName=ROLE)["Role"]
    assert role["Arn"] == role_arn
    assert role["AssumeRolePolicyDocument"] == expected_trust(
        PROVIDER_ARN, "system:serviceaccount:team-a:reader"
    )
    attached = iam.list_attached_role_policies(RoleName=ROLE)["AttachedPolicies"]
    assert [policy["PolicyArn"] for policy in attached] == [managed]
    s3 = iam.get_role_policy(RoleName=ROLE, PolicyName="irsa-webhook-s3-prefix")
    (statement,) = s3["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Resource"] == ["arn:aws:s3:::acme-data-*", "arn:aws:s3:::acme-data-*/*"]
    assert {"s3:ListBucket", "s3:GetObject", "s3:PutObject"} <= set(statement["Action"])


def test_create_role_again_is_idempotent_and_updates_the_trust_policy(
    moto: Moto, env: dict[str, str]
) -> None:
    create_provider(env, "--thumbprint", THUMB_A)
    assert create_role(env, "--s3-bucket-prefix", "acme-").returncode == 0
    again = create_role(env, "--s3-bucket-prefix", "acme-")
    assert again.returncode == 0, again.stderr
    assert "up to date" in again.stderr

    moved = create_role(env, "--audience", "argo", service_account="writer")
    assert moved.returncode == 0, moved.stderr
    assert "trust policy is replaced" in moved.stderr
    iam = moto.client("iam")
    assert len(iam.list_roles()["Roles"]) == 1
    assert iam.get_role(RoleName=ROLE)["Role"]["AssumeRolePolicyDocument"] == expected_trust(
        PROVIDER_ARN, "system:serviceaccount:team-a:writer", aud="argo"
    )
    annotations = yaml.safe_load(moved.stdout)["metadata"]["annotations"]
    assert annotations["eks.amazonaws.com/audience"] == "argo"


def test_role_dry_run_without_provider_previews_exactly_what_a_real_run_sends(
    moto: Moto, env: dict[str, str]
) -> None:
    dry = create_role(env, "--s3-bucket-prefix", "acme-", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"create-provider will make {PROVIDER_ARN}" in dry.stderr
    assert f"arn:aws:iam::{ACCOUNT}:role/{ROLE}" in dry.stderr
    calls = json.loads(dry.stdout)
    assert [call["operation"] for call in calls] == ["CreateRole", "PutRolePolicy"]
    trust = calls[0]["parameters"]["AssumeRolePolicyDocument"]
    assert trust == expected_trust(PROVIDER_ARN, "system:serviceaccount:team-a:reader")
    iam = moto.client("iam")
    assert iam.list_roles()["Roles"] == []
    assert iam.list_open_id_connect_providers()["OpenIDConnectProviderList"] == []

    create_provider(env, "--thumbprint", THUMB_A)
    assert create_role(env, "--s3-bucket-prefix", "acme-").returncode == 0
    assert iam.get_role(RoleName=ROLE)["Role"]["AssumeRolePolicyDocument"] == trust
    stored = iam.get_role_policy(RoleName=ROLE, PolicyName="irsa-webhook-s3-prefix")
    assert stored["PolicyDocument"] == calls[1]["parameters"]["PolicyDocument"]


def test_missing_provider_is_one_line_and_creates_nothing(moto: Moto, env: dict[str, str]) -> None:
    line = assert_one_line_error(create_role(env), 1)
    assert "no IAM OIDC provider for https://oidc.example.com/cluster-1" in line
    assert "create-provider" in line
    assert moto.client("iam").list_roles()["Roles"] == []


def test_unknown_policy_arn_fails_before_the_role_exists(moto: Moto, env: dict[str, str]) -> None:
    create_provider(env, "--thumbprint", THUMB_A)
    missing = f"arn:aws:iam::{ACCOUNT}:policy/not-there"
    line = assert_one_line_error(create_role(env, "--policy-arn", missing), 2)
    assert missing in line
    assert moto.client("iam").list_roles()["Roles"] == []


def test_no_credentials_at_all_is_one_clear_line(moto: Moto, tmp_path: Path) -> None:
    env = isolated_aws_env(tmp_path, AWS_ENDPOINT_URL=moto.endpoint, AWS_REGION="eu-west-1")
    line = assert_one_line_error(create_role(env), 1)
    assert line.startswith("irsa-webhook: no AWS credentials found")


def test_access_denied_and_rejected_keys_are_one_clear_line_and_dry_run_needs_only_reads(
    moto: Moto, env: dict[str, str]
) -> None:
    iam = moto.client("iam")
    iam.create_user(UserName="auditor")
    iam.put_user_policy(UserName="auditor", PolicyName="read", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["iam:List*", "iam:Get*"], "Resource": "*"}],
    }))  # fmt: skip
    key = iam.create_access_key(UserName="auditor")["AccessKey"]
    auditor = {
        **env,
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
    }
    with moto.enforcing_iam():
        denied = run_cli(
            "aws", "create-provider", "--issuer", ISSUER, "--thumbprint", THUMB_A, env=auditor
        )  # fmt: skip
        rejected = run_cli(
            "aws", "create-provider", "--issuer", ISSUER, "--thumbprint", THUMB_A, env=env
        )  # fmt: skip
        preview = create_role(auditor, "--dry-run")  # read permissions are enough to preview
    line = assert_one_line_error(denied, 1)
    assert line.startswith("irsa-webhook: AWS denied CreateOpenIDConnectProvider (AccessDenied)")
    assert "user/auditor" in line
    assert "AWS rejected the credentials" in assert_one_line_error(rejected, 1)
    assert preview.returncode == 0, preview.stderr
    assert [call["operation"] for call in json.loads(preview.stdout)] == ["CreateRole"]
    assert iam.list_open_id_connect_providers()["OpenIDConnectProviderList"] == []


def test_unknown_profile_is_one_clear_line(moto: Moto, env: dict[str, str]) -> None:
    result = run_cli(
        "aws", "create-provider", "--issuer", ISSUER, "--thumbprint", THUMB_A,
        "--profile", "nope", env=env,
    )  # fmt: skip
    assert "nope" in assert_one_line_error(result, 1)


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--namespace", "Team_A"),
        ("--service-account", "Reader"),
        ("--role-name", "has space"),
        ("--s3-bucket-prefix", "Acme*"),
        ("--policy-arn", "ReadOnlyAccess"),
        ("--issuer", "https://oidc.example.com/cluster-1/"),
    ],
)
def test_bad_role_input_is_one_line_naming_the_flag(tmp_path: Path, flag: str, value: str) -> None:
    arguments = {
        "--role-name": ROLE,
        "--issuer": ISSUER,
        "--namespace": "team-a",
        "--service-account": "reader",
        flag: value,
    }
    argv = [item for pair in arguments.items() for item in pair]
    result = run_cli("aws", "create-role", *argv, env=isolated_aws_env(tmp_path))
    line = assert_one_line_error(result, 2)
    assert flag.removeprefix("--") in line or value in line


def test_role_dry_run_on_an_existing_role_shows_only_the_changes(
    moto: Moto, env: dict[str, str]
) -> None:
    create_provider(env, "--thumbprint", THUMB_A)
    assert create_role(env, "--s3-bucket-prefix", "acme-").returncode == 0
    dry = create_role(
        env, "--s3-bucket-prefix", "acme-", "--s3-read-only", "--dry-run", service_account="writer"
    )
    assert dry.returncode == 0, dry.stderr
    calls = json.loads(dry.stdout)
    assert [call["operation"] for call in calls] == ["UpdateAssumeRolePolicy", "PutRolePolicy"]
    assert calls[0]["parameters"]["PolicyDocument"] == expected_trust(
        PROVIDER_ARN, "system:serviceaccount:team-a:writer"
    )
    assert "s3:PutObject" not in calls[1]["parameters"]["PolicyDocument"]["Statement"][0]["Action"]
    iam = moto.client("iam")
    assert iam.get_role(RoleName=ROLE)["Role"]["AssumeRolePolicyDocument"] == expected_trust(
        PROVIDER_ARN, "system:serviceaccount:team-a:reader"
    )
    stored = iam.get_role_policy(RoleName=ROLE, PolicyName="irsa-webhook-s3-prefix")
    assert "s3:PutObject" in stored["PolicyDocument"]["Statement"][0]["Action"]
