"""`irsa-webhook review`: what the webhook would do to pods, with no cluster.

Locally it runs the production code path (parse_review, admit) against ServiceAccounts read from
files; with --server it asks a running webhook instead (dry run) and shows its answer the same way.
"""

from __future__ import annotations

import argparse
import sys

from webhook.errors import UsageError
from webhook.manifests import POD_TEMPLATE_PATHS, kind_of, read_documents
from webhook.review import OUTPUTS, Subject, answer_locally, render, subject_from
from webhook.review_remote import RemoteWebhook
from webhook.serviceaccounts.offline import DEFAULT_NAMESPACE, OfflineServiceAccounts
from webhook.settings import add_mutation_flags, mutation_settings_from_args


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
