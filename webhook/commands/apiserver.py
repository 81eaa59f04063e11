"""`irsa-webhook apiserver flags`: the issuer settings for kubeadm, k3s, kind or MicroK8s."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from webhook.apiserver.distributions import FORMATS, render
from webhook.apiserver.keyfiles import SigningKeyPair, check_path_for_args
from webhook.apiserver.microk8s import check_audiences
from webhook.issuer import validate_issuer


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "apiserver",
        help="kube-apiserver settings for the issuer, for any distribution",
        description="kube-apiserver settings for the issuer, printed for a distribution.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    flags = actions.add_parser(
        "flags",
        help="print the settings (nothing is applied)",
        description=(
            "Print the API-server settings for ISSUER in a distribution's own format: "
            "the config on stdout, where to put the key copies and how to apply on stderr."
        ),
    )
    add_issuer_flags(flags)
    flags.add_argument("--format", required=True, choices=FORMATS, help="the distribution")
    flags.add_argument(
        "--key-dir",
        type=Path,
        help="where the key copies live on the node (kind: on the host running kind)",
    )
    flags.add_argument(
        "--previous-issuer",
        action="append",
        metavar="URL",
        help="an issuer to keep accepting (repeatable; default: the distribution's own)",
    )
    flags.add_argument(
        "--previous-key-file",
        action="append",
        metavar="PATH",
        help="a key file to keep verifying with (repeatable; default: the distribution's own)",
    )
    flags.add_argument(
        "--drop-previous",
        action="store_true",
        help="leave the previous issuer and keys out: tokens issued before stop validating",
    )
    flags.set_defaults(run=run_flags)


def add_issuer_flags(parser: argparse.ArgumentParser) -> None:
    """The inputs every API-server command shares: issuer, key pair, extra audiences."""
    parser.add_argument("--issuer", required=True, help="the OIDC issuer URL (https, exact)")
    parser.add_argument("--public-key", required=True, type=Path, help="PEM public key")
    parser.add_argument("--signing-key", required=True, type=Path, help="PEM private key")
    parser.add_argument(
        "--api-audiences",
        default="",
        metavar="A,...",
        help=(
            "audiences for the API server to accept besides those it accepts now "
            "(IRSA needs none: sts.amazonaws.com is asked for by the projected token)"
        ),
    )


def audiences_from(text: str) -> tuple[str, ...]:
    return check_audiences(tuple(a.strip() for a in text.split(",") if a.strip()))


def run_flags(args: argparse.Namespace) -> int:
    validate_issuer(args.issuer)
    for previous in args.previous_issuer or ():
        validate_issuer(previous)
    for path in args.previous_key_file or ():
        check_path_for_args(path, "--previous-key-file")
    audiences = check_audiences(
        tuple(a.strip() for a in args.api_audiences.split(",") if a.strip())
    )
    pair = SigningKeyPair.load(args.public_key, args.signing_key)
    if args.key_dir is not None:
        check_path_for_args(str(args.key_dir.absolute()), "--key-dir")
    rendered = render(
        args.format,
        args.issuer,
        pair,
        key_dir=args.key_dir,
        extra_audiences=audiences,
        previous_issuers=tuple(args.previous_issuer) if args.previous_issuer else None,
        previous_key_files=tuple(args.previous_key_file) if args.previous_key_file else None,
        drop_previous=args.drop_previous,
    )
    sys.stdout.write(rendered.config)
    key_dir = rendered.key_dir_on_host
    steps = [
        "# put the key copies where the settings point"
        + (" (every control-plane node):" if args.format != "kind" else ":"),
        f"sudo install -d -m 0700 {key_dir}",
        f"sudo install -m 0600 {args.signing_key} {key_dir}/{pair.private_name}",
        f"sudo install -m 0644 {args.public_key} {key_dir}/{pair.public_name}",
        f"# then: {rendered.next_steps}",
    ]
    print("\n".join(steps), file=sys.stderr)
    return 0
