"""The pure pieces of `irsa-webhook aws`: documents, thumbprint input, call names, error lines."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from webhook.aws import policies
from webhook.aws.calls import Call, calls_json, document_text
from webhook.aws.errors import aws_errors
from webhook.aws.thumbprint import normalize_thumbprint
from webhook.errors import CheckFailed, UsageError

OPERATIONS = (
    "CreateOpenIDConnectProvider",
    "AddClientIDToOpenIDConnectProvider",
    "UpdateOpenIDConnectProviderThumbprint",
    "CreateRole",
    "UpdateAssumeRolePolicy",
    "UpdateRole",
    "AttachRolePolicy",
    "PutRolePolicy",
)


@pytest.mark.parametrize("operation", OPERATIONS)
def test_each_call_names_a_real_iam_operation_and_its_boto3_method(operation: str) -> None:
    iam = boto3.session.Session().client("iam", region_name="us-east-1")
    assert iam.meta.method_to_api_mapping[Call("iam", operation).method] == operation


def test_dry_run_shows_documents_decoded_and_everything_else_as_sent() -> None:
    trust = policies.trust_policy(
        "arn:aws:iam::111122223333:oidc-provider/o.example/c", "https://o.example/c", "n", "s", "a"
    )
    call = Call(
        "iam", "CreateRole", {"RoleName": "r", "AssumeRolePolicyDocument": document_text(trust)}
    )
    assert json.loads(calls_json([call])) == [
        {
            "service": "iam",
            "operation": "CreateRole",
            "parameters": {"RoleName": "r", "AssumeRolePolicyDocument": trust},
        }
    ]


def test_trust_policy_condition_keys_are_the_issuer_without_scheme() -> None:
    trust = policies.trust_policy("ARN", "https://h.example:8443/a/b", "ns", "sa", "aud")
    (statement,) = trust["Statement"]
    assert statement["Condition"] == {
        "StringEquals": {
            "h.example:8443/a/b:sub": "system:serviceaccount:ns:sa",
            "h.example:8443/a/b:aud": "aud",
        }
    }


def test_s3_read_only_policy_cannot_write() -> None:
    (statement,) = policies.s3_prefix_policy("logs-", read_only=True)["Statement"]
    assert not {a for a in statement["Action"] if "Put" in a or "Delete" in a}
    assert "s3:GetObject" in statement["Action"]


def test_default_audience_needs_no_annotation() -> None:
    manifest = policies.service_account_manifest("sa", "ns", "arn:aws:iam::1:role/r")
    assert manifest["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/r"
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9E99A48A9960B14926BB7F3B02E22DA2B0AB7280", "9e99a48a9960b14926bb7f3b02e22da2b0ab7280"),
        (
            "9E:99:A4:8A:99:60:B1:49:26:BB:7F:3B:02:E2:2D:A2:B0:AB:72:80",
            "9e99a48a9960b14926bb7f3b02e22da2b0ab7280",
        ),
    ],
)
def test_thumbprints_in_iam_or_openssl_form(text: str, expected: str) -> None:
    assert normalize_thumbprint(text) == expected


@pytest.mark.parametrize(
    "text", ["", "9e99", "g" * 40, "9e99a48a9960b14926bb7f3b02e22da2b0ab72801"]
)
def test_not_a_thumbprint(text: str) -> None:
    with pytest.raises(UsageError, match="--thumbprint"):
        normalize_thumbprint(text)


def client_error(code: str, message: str = "details here") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "CreateRole")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            client_error("AccessDenied", "User: x is not\nauthorized"),
            "AWS denied CreateRole (AccessDenied): User: x is not authorized",
        ),
        (
            client_error("Throttling"),
            "AWS throttled CreateRole even after retries (Throttling): try again later",
        ),
        (
            client_error("ExpiredToken"),
            "AWS rejected the credentials on CreateRole (ExpiredToken)",
        ),
        (
            client_error("EntityAlreadyExists"),
            "AWS CreateRole failed (EntityAlreadyExists): details here",
        ),
        (NoCredentialsError(), "no AWS credentials found"),
        (EndpointConnectionError(endpoint_url="https://iam.amazonaws.com/"), "cannot reach AWS"),
    ],
)
def test_aws_failures_become_one_line(error: Exception, expected: str) -> None:
    with pytest.raises(CheckFailed) as caught, aws_errors():
        raise error
    line = str(caught.value)
    assert line.startswith(expected)
    assert "\n" not in line
