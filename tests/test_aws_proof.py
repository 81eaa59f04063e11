"""The proof that ties the product together: a token shaped like the API server's, minted by
`oidc token`, a provider and role made by `aws create-provider/create-role`, and the unmodified
boto3 credential chain in a process holding only what the webhook injects, assuming the role.

moto accepts any web identity token for any role (it checks neither signature nor trust policy),
so the test also evaluates the stored trust policy against the token's verified claims itself,
the way STS does; moto proves the wire and the SDK chain, the evaluation proves the policy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import yaml
from aws_support import ACCOUNT, REGION, Moto, moto_env, moto_server
from conftest import run_cli

from webhook.oidc import keys

ISSUER = "https://oidc.example.com/cluster-1"
NAMESPACE, SERVICE_ACCOUNT, ROLE = "team-a", "s3-reader", "irsa-proof"
THUMBPRINT = "9e99a48a9960b14926bb7f3b02e22da2b0ab7280"

CALLER_IDENTITY = """
import json, boto3
credentials = boto3.Session().get_credentials()
identity = boto3.client("sts").get_caller_identity()
print(json.dumps({"method": credentials.method, "arn": identity["Arn"],
                  "account": identity["Account"]}))
"""


@pytest.fixture
def moto() -> Iterator[Moto]:
    with moto_server() as server:
        yield server


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def pod_environment(role_arn: str, token_file: Path, moto: Moto, tmp_path: Path) -> dict[str, str]:
    """Only what the webhook injects (plus the stand-in's endpoint and PATH). No keys, no
    profile, config files that do not exist, and no instance metadata to fall back on."""
    return {
        "PATH": os.environ["PATH"],
        "AWS_ROLE_ARN": role_arn,
        "AWS_WEB_IDENTITY_TOKEN_FILE": str(token_file),
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": moto.endpoint,
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def caller_identity(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CALLER_IDENTITY], capture_output=True, text=True, env=env,
        timeout=60,
    )  # fmt: skip


def trust_allows(
    trust: dict[str, Any], provider: dict[str, Any], provider_arn: str, claims: dict[str, Any]
) -> bool:
    """STS's decision for AssumeRoleWithWebIdentity, for the StringEquals policies we write."""
    prefix = provider["Url"]
    if claims["iss"].removeprefix("https://") != prefix:
        return False
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if not set(audiences) & set(provider["ClientIDList"]):
        return False
    values = {f"{prefix}:sub": [claims["sub"]], f"{prefix}:aud": audiences}
    for statement in trust["Statement"]:
        if (
            statement["Effect"] == "Allow"
            and statement["Action"] == "sts:AssumeRoleWithWebIdentity"
            and statement["Principal"] == {"Federated": provider_arn}
            and all(
                expected in values.get(key, [])
                for key, expected in statement["Condition"]["StringEquals"].items()
            )
        ):
            return True
    return False


def test_boto3_in_a_pod_environment_assumes_the_role(moto: Moto, tmp_path: Path) -> None:
    key_dir = tmp_path / "keys"
    ok(run_cli("oidc", "keygen", "--out", str(key_dir), env=dict(os.environ)))
    token = ok(run_cli(
        "oidc", "token", "--signing-key", str(key_dir / "private_key.pem"), "--issuer", ISSUER,
        "--namespace", NAMESPACE, "--service-account", SERVICE_ACCOUNT, env=dict(os.environ),
    )).strip()  # fmt: skip
    token_file = tmp_path / "token"
    token_file.write_text(token)

    admin = moto_env(moto, tmp_path)
    provider_arn = ok(run_cli(
        "aws", "create-provider", "--issuer", ISSUER, "--thumbprint", THUMBPRINT, env=admin
    )).strip()  # fmt: skip
    manifest = yaml.safe_load(ok(run_cli(
        "aws", "create-role", "--role-name", ROLE, "--issuer", ISSUER, "--namespace", NAMESPACE,
        "--service-account", SERVICE_ACCOUNT, "--s3-bucket-prefix", "acme-", env=admin,
    )))  # fmt: skip
    role_arn = manifest["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]

    pod_env = pod_environment(role_arn, token_file, moto, tmp_path)
    identity = json.loads(ok(caller_identity(pod_env)))
    assert identity["method"] == "assume-role-with-web-identity"
    assert f":assumed-role/{ROLE}/" in identity["arn"]
    assert identity["arn"].startswith(f"arn:aws:sts::{ACCOUNT}:assumed-role/")

    # The token is what the chain used: without the file there are no credentials at all.
    gone = tmp_path / "gone"
    missing = caller_identity({**pod_env, "AWS_WEB_IDENTITY_TOKEN_FILE": str(gone)})
    assert missing.returncode != 0
    assert f"No such file or directory: '{gone}'" in missing.stderr

    # What moto does not check: the role's trust policy admits exactly this token.
    public_key = keys.load_public_key(key_dir / "public.pem")
    claims = jwt.decode(
        token,
        public_key,
        algorithms=[keys.algorithm(public_key)],
        audience="sts.amazonaws.com",
        issuer=ISSUER,
    )
    iam = moto.client("iam")
    provider = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=provider_arn)
    trust = iam.get_role(RoleName=ROLE)["Role"]["AssumeRolePolicyDocument"]
    assert trust_allows(trust, provider, provider_arn, claims)
    for other in (
        {**claims, "sub": f"system:serviceaccount:{NAMESPACE}:other"},
        {**claims, "sub": f"system:serviceaccount:other:{SERVICE_ACCOUNT}"},
        {**claims, "aud": ["someone-else"]},
        {**claims, "iss": "https://oidc.example.com/cluster-2"},
    ):
        assert not trust_allows(trust, provider, provider_arn, other)
