"""Reading IAM's current state and deciding the calls that bring it to what the user asked for.

Deciding is separate from doing so that a second run makes no calls, and a dry run can print
exactly the calls a real run would make against the same account.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from webhook.aws.calls import Call, document_text
from webhook.errors import UsageError
from webhook.issuer import issuer_host_path


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _missing(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "NoSuchEntity"


def find_provider_arn(iam: Any, issuer: str) -> str | None:
    """The ARN of the account's OIDC provider for `issuer`, if there is one."""
    suffix = ":oidc-provider/" + issuer_host_path(issuer)
    for entry in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]:
        if entry["Arn"].endswith(suffix):
            return entry["Arn"]
    return None


@dataclass
class Plan:
    """The calls to make, the ARN of what exists already, and what the user should know."""

    existing_arn: str | None = None
    calls: list[Call] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, operation: str, **parameters: Any) -> None:
        self.calls.append(Call("iam", operation, parameters))


def plan_provider(iam: Any, issuer: str, client_ids: list[str], thumbprints: list[str]) -> Plan:
    """Create the provider, or add missing client IDs and set the thumbprints of the one there."""
    client_ids, thumbprints = _unique(client_ids), _unique(thumbprints)
    arn = find_provider_arn(iam, issuer)
    plan = Plan(existing_arn=arn)
    if arn is None:
        plan.add(
            "CreateOpenIDConnectProvider",
            Url=issuer,
            ClientIDList=client_ids,
            ThumbprintList=thumbprints,
        )
        return plan
    current = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    present = current.get("ClientIDList", [])
    for client_id in client_ids:
        if client_id not in present:
            plan.add(
                "AddClientIDToOpenIDConnectProvider",
                OpenIDConnectProviderArn=arn,
                ClientID=client_id,
            )
    extra = [client_id for client_id in present if client_id not in client_ids]
    if extra:
        plan.notes.append(
            f"left in place client IDs not asked for: {', '.join(extra)} "
            "(aws iam remove-client-id-from-open-id-connect-provider removes one)"
        )
    current_thumbprints = {value.lower() for value in current.get("ThumbprintList", [])}
    if current_thumbprints != set(thumbprints):
        plan.add(
            "UpdateOpenIDConnectProviderThumbprint",
            OpenIDConnectProviderArn=arn,
            ThumbprintList=thumbprints,
        )
    return plan


@dataclass(frozen=True)
class RoleRequest:
    name: str
    trust_policy: dict[str, Any]
    description: str | None
    default_description: str
    policy_arns: list[str]
    inline_policies: dict[str, dict[str, Any]]


def _get_role(iam: Any, name: str) -> dict[str, Any] | None:
    try:
        return iam.get_role(RoleName=name)["Role"]
    except ClientError as error:
        if _missing(error):
            return None
        raise


def _attached_policy_arns(iam: Any, name: str) -> set[str]:
    pages = iam.get_paginator("list_attached_role_policies").paginate(RoleName=name)
    return {policy["PolicyArn"] for page in pages for policy in page["AttachedPolicies"]}


def _inline_policy(iam: Any, role: str, policy: str) -> dict[str, Any] | None:
    try:
        return iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"]
    except ClientError as error:
        if _missing(error):
            return None
        raise


def _check_policy_exists(iam: Any, policy_arn: str) -> None:
    """Fail before the first change rather than leave a role half set up."""
    try:
        iam.get_policy(PolicyArn=policy_arn)
    except ClientError as error:
        if _missing(error):
            raise UsageError(f"--policy-arn {policy_arn} does not exist in IAM") from None
        raise


def plan_role(iam: Any, request: RoleRequest) -> Plan:
    """Create the role or update its trust policy; attach and put only what is missing or old."""
    role = _get_role(iam, request.name)
    plan = Plan(existing_arn=role["Arn"] if role else None)
    if role is None:
        plan.add(
            "CreateRole",
            RoleName=request.name,
            AssumeRolePolicyDocument=document_text(request.trust_policy),
            Description=request.description or request.default_description,
        )
        attached: set[str] = set()
    else:
        if role.get("AssumeRolePolicyDocument") != request.trust_policy:
            plan.add(
                "UpdateAssumeRolePolicy",
                RoleName=request.name,
                PolicyDocument=document_text(request.trust_policy),
            )
            plan.notes.append(f"role {request.name} exists: its trust policy is replaced")
        if request.description is not None and role.get("Description") != request.description:
            plan.add("UpdateRole", RoleName=request.name, Description=request.description)
        attached = _attached_policy_arns(iam, request.name)
    for policy_arn in _unique(request.policy_arns):
        if policy_arn not in attached:
            _check_policy_exists(iam, policy_arn)
            plan.add("AttachRolePolicy", RoleName=request.name, PolicyArn=policy_arn)
    for policy_name, document in request.inline_policies.items():
        current = _inline_policy(iam, request.name, policy_name) if role else None
        if current != document:
            plan.add(
                "PutRolePolicy",
                RoleName=request.name,
                PolicyName=policy_name,
                PolicyDocument=document_text(document),
            )
    return plan
