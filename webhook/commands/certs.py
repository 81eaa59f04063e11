"""`irsa-webhook certs`: the CA and serving certificate for the `manifests/self-signed` install."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from webhook.servingcerts import DEFAULT_DAYS, DEFAULT_NAMESPACE, DEFAULT_SERVICE, provision


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "certs",
        help="CA and serving certificate for the webhook Service (self-signed install)",
        description="Write ca.crt, ca.key, tls.crt and tls.key (keys mode 0600) for the webhook "
        "Service, then print the caBundle (base64 of ca.crt) on stdout. With --force an existing "
        "CA is kept and only the serving certificate is renewed, so the caBundle does not change.",
    )
    parser.add_argument("--service", default=DEFAULT_SERVICE, help="Service name (%(default)s)")
    parser.add_argument(
        "--namespace", default=DEFAULT_NAMESPACE, help="namespace of the Service (%(default)s)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("certs"), help="directory to write to (%(default)s)"
    )
    parser.add_argument(
        "--days",
        type=int,
        default=DEFAULT_DAYS,
        help="validity of the serving certificate in days (%(default)s; the CA gets 10 years)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace an existing serving certificate (keeping an existing CA)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    result = provision(args.out, args.service, args.namespace, args.days, force=args.force)
    files = result.files
    if result.ca_created:
        print(f"new CA: {files.ca_cert} (key {files.ca_key}, mode 0600)", file=sys.stderr)
        if args.force:
            print("the caBundle is new: apply the manifests again", file=sys.stderr)
    else:
        print(f"kept CA: {files.ca_cert} (the caBundle is unchanged)", file=sys.stderr)
    print(
        f"serving certificate: {files.tls_cert} (key {files.tls_key}, mode 0600) "
        f"for {', '.join(result.names)}, {args.days} days",
        file=sys.stderr,
    )
    print("caBundle (base64 of ca.crt) follows on stdout", file=sys.stderr)
    print(result.ca_bundle)
    return 0
