"""`irsa-webhook aws`: the IAM OIDC provider, roles for one ServiceAccount, thumbprints."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cryptography import x509

from webhook.aws import policies
from webhook.aws.calls import Call, calls_json
from webhook.aws.errors import aws_errors
from webhook.aws.iam import Plan, RoleRequest, find_provider_arn, plan_provider, plan_role
from webhook.aws.session import AwsClients
from webhook.aws.thumbprint import (
    DEFAULT_TIMEOUT,
    issuer_address,
    normalize_thumbprint,
    presented_chain,
    sha1_thumbprint,
)
from webhook.errors import CheckFailed, UsageError
from webhook.issuer import validate_issuer
from webhook.oidc.token import service_account_subject
from webhook.settings import DEFAULT_TOKEN_AUDIENCE

AWS_CONFIG_NOTE = (
    "Credentials, region and endpoint come from the standard AWS configuration: AWS_PROFILE, "
    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN, ~/.aws/config, SSO, "
    "AWS_ENDPOINT_URL."
)


def register(subparsers: argparse._SubParsersAction) -> None:
    aws = subparsers.add_parser(
        "aws",
        help="AWS side: IAM OIDC provider, IAM roles for a ServiceAccount, TLS thumbprint",
        description="Make AWS trust the issuer and let one ServiceAccount assume a role. "
        + AWS_CONFIG_NOTE,
    )
    commands = aws.add_subparsers(dest="aws_command", metavar="SUBCOMMAND")
    commands.required = True
    _register_thumbprint(commands)
    _register_create_provider(commands)
    _register_create_role(commands)


def _add_tls_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ca-file",
        type=Path,
        metavar="CA",
        help="trust this CA (PEM) for the issuer's host instead of the system store",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"limit for the TLS handshake (default {DEFAULT_TIMEOUT:g})",
    )


def _add_aws_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", metavar="NAME", help="AWS profile (default: AWS_PROFILE)")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the JSON of every call that would change IAM (operation and parameters) "
        "and make none; read-only calls still run to decide them",
    )


def _check_tls_flags(args: argparse.Namespace) -> None:
    if args.ca_file is not None and not args.ca_file.is_file():
        raise UsageError(f"--ca-file {args.ca_file} is not a file")
    if not 0 < args.timeout <= 300:
        raise UsageError(f"--timeout {args.timeout:g} must be between 0 and 300 seconds")


def _clients(args: argparse.Namespace) -> AwsClients:
    with aws_errors():
        return AwsClients(args.profile)


def _make(clients: AwsClients, calls: list[Call]) -> list[dict[str, Any]]:
    responses = []
    for call in calls:
        responses.append(call.make(clients.client(call.service)))
        print(f"done: {call.service}:{call.operation}", file=sys.stderr)
    if not calls:
        print("up to date: nothing to change", file=sys.stderr)
    return responses


def _print_dry_run(plan: Plan) -> None:
    sys.stdout.write(calls_json(plan.calls))
    for note in plan.notes:
        print(f"note: {note}", file=sys.stderr)
    print(
        f"dry run: {len(plan.calls)} call(s) printed above were not made; nothing changed",
        file=sys.stderr,
    )


# thumbprint ---------------------------------------------------------------------------------


def _register_thumbprint(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "thumbprint",
        help="SHA-1 thumbprint of the issuer host's top certificate, as IAM wants it",
        description="Connect to the issuer's host over TLS (verified), and print the SHA-1 "
        "fingerprint (40 hex digits) of the last certificate in the chain it presents: the top "
        "intermediate or root, as IAM documents it.",
    )
    parser.add_argument("--issuer", required=True, metavar="URL")
    _add_tls_flags(parser)
    parser.set_defaults(run=run_thumbprint)


def _thumbprint(args: argparse.Namespace, issuer: str, *, explain: bool) -> str:
    host, port = issuer_address(issuer)
    chain = presented_chain(host, port, ca_file=args.ca_file, timeout=args.timeout)
    top = chain[-1]
    if explain:
        subject = x509.load_der_x509_certificate(top).subject.rfc4514_string()
        print(
            f"{host}:{port} presented {len(chain)} certificate(s); the last is {subject}",
            file=sys.stderr,
        )
        if len(chain) == 1:
            print(
                "note: only the server's own certificate was presented, so the thumbprint "
                "changes with every renewal; serve the intermediate too",
                file=sys.stderr,
            )
    return sha1_thumbprint(top)


def run_thumbprint(args: argparse.Namespace) -> int:
    issuer = validate_issuer(args.issuer)
    _check_tls_flags(args)
    print(_thumbprint(args, issuer, explain=True))
    return 0


# create-provider ----------------------------------------------------------------------------


def _register_create_provider(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "create-provider",
        help="create the IAM OIDC provider for the issuer, or bring it up to date",
        description="Create the IAM OpenID Connect provider for the issuer. When one exists for "
        "that URL, add missing client IDs and set its thumbprints instead of failing. Prints the "
        "provider ARN. " + AWS_CONFIG_NOTE,
    )
    parser.add_argument("--issuer", required=True, metavar="URL")
    parser.add_argument(
        "--client-id",
        action="append",
        metavar="ID",
        help=f"audience the provider accepts (repeatable; default {DEFAULT_TOKEN_AUDIENCE})",
    )
    parser.add_argument(
        "--thumbprint",
        action="append",
        metavar="HEX",
        help="SHA-1 thumbprint (repeatable; default: computed from a TLS handshake)",
    )
    _add_tls_flags(parser)
    _add_aws_flags(parser)
    parser.set_defaults(run=run_create_provider)


def _client_ids(values: list[str] | None) -> list[str]:
    client_ids = values or [DEFAULT_TOKEN_AUDIENCE]
    for client_id in client_ids:
        if not 1 <= len(client_id) <= 255:
            raise UsageError(f"--client-id {client_id!r} must be 1 to 255 characters")
    return client_ids


def run_create_provider(args: argparse.Namespace) -> int:
    issuer = validate_issuer(args.issuer)
    client_ids = _client_ids(args.client_id)
    if args.thumbprint:
        thumbprints = [normalize_thumbprint(value) for value in args.thumbprint]
        if len(set(thumbprints)) > 5:
            raise UsageError("IAM keeps at most 5 thumbprints per provider")
    else:
        _check_tls_flags(args)
        thumbprints = [_thumbprint(args, issuer, explain=False)]
    clients = _clients(args)
    with aws_errors():
        plan = plan_provider(clients.iam, issuer, client_ids, thumbprints)
        if args.dry_run:
            _print_dry_run(plan)
            if plan.existing_arn is None:
                caller = clients.caller()
                arn = policies.provider_arn(caller.partition, caller.account, issuer)
                print(f"the provider will be {arn}", file=sys.stderr)
            return 0
        responses = _make(clients, plan.calls)
    for note in plan.notes:
        print(f"note: {note}", file=sys.stderr)
    print(plan.existing_arn or responses[0]["OpenIDConnectProviderArn"])
    return 0


# create-role --------------------------------------------------------------------------------


def _register_create_role(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "create-role",
        help="create an IAM role that exactly one ServiceAccount can assume",
        description="Create (or update) a role whose trust policy lets only "
        "system:serviceaccount:NS:SA, with tokens for the audience, assume it through the "
        "issuer's IAM OIDC provider. Prints the ServiceAccount manifest with the role "
        "annotation, ready for `kubectl apply -f -`. " + AWS_CONFIG_NOTE,
    )
    parser.add_argument("--role-name", required=True, metavar="NAME")
    parser.add_argument("--issuer", required=True, metavar="URL")
    parser.add_argument("--namespace", required=True, metavar="NS")
    parser.add_argument("--service-account", required=True, metavar="SA")
    parser.add_argument(
        "--audience",
        default=DEFAULT_TOKEN_AUDIENCE,
        metavar="A",
        help=f"token audience the role accepts (default {DEFAULT_TOKEN_AUDIENCE})",
    )
    parser.add_argument(
        "--policy-arn",
        action="append",
        default=[],
        metavar="ARN",
        help="managed policy to attach (repeatable)",
    )
    parser.add_argument(
        "--s3-bucket-prefix",
        metavar="PREFIX",
        help=f"inline policy {policies.S3_POLICY_NAME!r}: S3 on buckets named PREFIX* and "
        "their objects",
    )
    parser.add_argument(
        "--s3-read-only",
        action="store_true",
        help="with --s3-bucket-prefix: list and read only, no writes or deletes",
    )
    parser.add_argument("--description", metavar="TEXT", help="role description")
    _add_aws_flags(parser)
    parser.set_defaults(run=run_create_role)


def _role_request(
    args: argparse.Namespace, issuer: str, provider: str, partition: str
) -> RoleRequest:
    inline = {}
    if args.s3_bucket_prefix:
        inline[policies.S3_POLICY_NAME] = policies.s3_prefix_policy(
            args.s3_bucket_prefix, read_only=args.s3_read_only, partition=partition
        )
    subject = service_account_subject(args.namespace, args.service_account)
    return RoleRequest(
        name=args.role_name,
        trust_policy=policies.trust_policy(
            provider, issuer, args.namespace, args.service_account, args.audience
        ),
        description=args.description,
        default_description=f"IRSA: assumed by {subject} with tokens from {issuer}"[:1000],
        policy_arns=args.policy_arn,
        inline_policies=inline,
    )


def _validate_role_args(args: argparse.Namespace) -> str:
    issuer = validate_issuer(args.issuer)
    policies.validate_role_name(args.role_name)
    policies.validate_service_account(args.namespace, args.service_account)
    if not args.audience:
        raise UsageError("--audience must not be empty")
    for arn in args.policy_arn:
        policies.validate_policy_arn(arn)
    if args.s3_bucket_prefix is not None:
        policies.validate_bucket_prefix(args.s3_bucket_prefix)
    elif args.s3_read_only:
        raise UsageError("--s3-read-only applies only with --s3-bucket-prefix")
    if args.description is not None and len(args.description) > 1000:
        raise UsageError("--description is longer than IAM's 1000 characters")
    return issuer


def run_create_role(args: argparse.Namespace) -> int:
    issuer = _validate_role_args(args)
    clients = _clients(args)
    with aws_errors():
        provider = find_provider_arn(clients.iam, issuer)
        if provider is None:
            if not args.dry_run:
                raise CheckFailed(
                    f"no IAM OIDC provider for {issuer} in this account: run "
                    f"`irsa-webhook aws create-provider --issuer {issuer}` first"
                )
            caller = clients.caller()
            provider = policies.provider_arn(caller.partition, caller.account, issuer)
            print(
                f"note: no IAM OIDC provider for {issuer} yet; create-provider will make "
                f"{provider}",
                file=sys.stderr,
            )
        partition, account = provider.split(":")[1], provider.split(":")[4]
        plan = plan_role(clients.iam, _role_request(args, issuer, provider, partition))
        if args.dry_run:
            _print_dry_run(plan)
            arn = plan.existing_arn or policies.role_arn(partition, account, args.role_name)
            print(f"the role will be {arn}", file=sys.stderr)
            return 0
        responses = _make(clients, plan.calls)
    for note in plan.notes:
        print(f"note: {note}", file=sys.stderr)
    arn = plan.existing_arn or responses[0]["Role"]["Arn"]
    manifest = policies.service_account_manifest(
        args.service_account, args.namespace, arn, args.audience
    )
    print(f"# role {arn}")
    sys.stdout.write(policies.manifest_yaml(manifest))
    return 0
