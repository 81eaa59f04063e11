"""The documents IAM and Kubernetes need, as pure functions of the user's choices.

People assemble these by hand and get the condition keys wrong, which shows up only as
AccessDenied when a pod first calls STS; building them in one place keeps them right.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from webhook.errors import UsageError
from webhook.issuer import issuer_host_path
from webhook.oidc.token import service_account_subject
from webhook.settings import DEFAULT_ANNOTATION_PREFIX, DEFAULT_TOKEN_AUDIENCE

POLICY_VERSION = "2012-10-17"
S3_POLICY_NAME = "irsa-webhook-s3-prefix"

# Object-level and listing actions that `aws s3 ls/cp/sync/rm` need on the buckets, and no
# bucket administration (policies, ACLs, deletion of the bucket itself).
S3_READ_ACTIONS = ("s3:GetBucketLocation", "s3:ListBucket", "s3:GetObject")
S3_WRITE_ACTIONS = (
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
    "s3:ListBucketMultipartUploads",
    "s3:ListMultipartUploadParts",
)

_ROLE_NAME = re.compile(r"^[\w+=,.@-]{1,64}$")
# Namespaces are DNS labels; ServiceAccount names are DNS subdomains (what the API server allows).
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_BUCKET_PREFIX = re.compile(r"^[a-z0-9][a-z0-9.-]{0,62}$")
_POLICY_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(aws|\d{12}):policy/\S+$")


def validate_role_name(name: str) -> str:
    if not _ROLE_NAME.match(name):
        raise UsageError(
            f"--role-name {name!r} is not a valid IAM role name "
            "(1-64 characters: letters, digits and +=,.@_-)"
        )
    return name


def validate_service_account(namespace: str, service_account: str) -> None:
    """Refuse names the API server would refuse: a trust policy for them could never match."""
    if not _DNS_LABEL.match(namespace):
        raise UsageError(
            f"--namespace {namespace!r} is not a Kubernetes namespace name "
            "(lowercase letters, digits and '-', at most 63)"
        )
    if not _DNS_SUBDOMAIN.match(service_account):
        raise UsageError(
            f"--service-account {service_account!r} is not a Kubernetes ServiceAccount name "
            "(lowercase letters, digits, '-' and '.', at most 253)"
        )


def validate_policy_arn(arn: str) -> str:
    if not _POLICY_ARN.match(arn):
        raise UsageError(
            f"--policy-arn {arn!r} is not a managed policy ARN "
            "(arn:aws:iam::aws:policy/NAME or arn:aws:iam::ACCOUNT:policy/NAME)"
        )
    return arn


def validate_bucket_prefix(prefix: str) -> str:
    if not _BUCKET_PREFIX.match(prefix):
        raise UsageError(
            f"--s3-bucket-prefix {prefix!r} cannot start an S3 bucket name "
            "(lowercase letters, digits, '.' and '-', starting with a letter or digit)"
        )
    return prefix


def provider_arn(partition: str, account: str, issuer: str) -> str:
    """The ARN IAM gives the OIDC provider of `issuer`."""
    return f"arn:{partition}:iam::{account}:oidc-provider/{issuer_host_path(issuer)}"


def role_arn(partition: str, account: str, role_name: str) -> str:
    return f"arn:{partition}:iam::{account}:role/{role_name}"


def trust_policy(
    provider: str, issuer: str, namespace: str, service_account: str, audience: str
) -> dict[str, Any]:
    """Let exactly one ServiceAccount, with tokens for exactly one audience, assume the role."""
    prefix = issuer_host_path(issuer)
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{prefix}:sub": service_account_subject(namespace, service_account),
                        f"{prefix}:aud": audience,
                    }
                },
            }
        ],
    }


def s3_prefix_policy(
    prefix: str, *, read_only: bool = False, partition: str = "aws"
) -> dict[str, Any]:
    """S3 on every bucket whose name starts with `prefix`, and on the objects in them."""
    actions = S3_READ_ACTIONS if read_only else S3_READ_ACTIONS + S3_WRITE_ACTIONS
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Effect": "Allow",
                "Action": list(actions),
                "Resource": [
                    f"arn:{partition}:s3:::{prefix}*",
                    f"arn:{partition}:s3:::{prefix}*/*",
                ],
            }
        ],
    }


def service_account_manifest(
    name: str, namespace: str, role: str, audience: str = DEFAULT_TOKEN_AUDIENCE
) -> dict[str, Any]:
    """The ServiceAccount the webhook reads: role annotation, and the audience unless default."""
    annotations = {f"{DEFAULT_ANNOTATION_PREFIX}/role-arn": role}
    if audience != DEFAULT_TOKEN_AUDIENCE:
        annotations[f"{DEFAULT_ANNOTATION_PREFIX}/audience"] = audience
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
    }


def manifest_yaml(manifest: dict[str, Any]) -> str:
    return yaml.safe_dump(manifest, sort_keys=False, default_flow_style=False)
