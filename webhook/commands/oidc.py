"""`irsa-webhook oidc`: the OIDC issuer toolkit (keys, JWKS, discovery, site, token, verify)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from webhook.errors import UsageError
from webhook.issuer import validate_issuer
from webhook.oidc import keys
from webhook.oidc.jwks import build_jwks, jwks_json
from webhook.oidc.token import service_account_claims, sign_token
from webhook.settings import DEFAULT_TOKEN_AUDIENCE

DEFAULT_TOKEN_SECONDS = 3600


def register(subparsers: argparse._SubParsersAction) -> None:
    oidc = subparsers.add_parser(
        "oidc",
        help="OIDC issuer: signing keys, JWKS, discovery document, site, test tokens, verify",
        description="Set up and check the OIDC issuer AWS STS trusts for ServiceAccount tokens.",
    )
    commands = oidc.add_subparsers(dest="oidc_command", metavar="SUBCOMMAND")
    commands.required = True
    _register_keygen(commands)
    _register_jwks(commands)
    _register_token(commands)


def _write_output(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text)
        return
    try:
        out.write_text(text)
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror or exc}") from None


# keygen -------------------------------------------------------------------------------------


def _register_keygen(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "keygen",
        help="create the API server's ServiceAccount signing key pair",
        description="Write DIR/private_key.pem (PKCS#8, mode 0600 from creation) for "
        "--service-account-signing-key-file and DIR/public.pem (SubjectPublicKeyInfo) for "
        "--service-account-key-file and the JWKS.",
    )
    parser.add_argument("--out", required=True, type=Path, metavar="DIR")
    parser.add_argument(
        "--type",
        choices=("rsa", "ec"),
        default="rsa",
        dest="key_type",
        help="rsa (default, RS256) or ec (P-256, ES256)",
    )
    parser.add_argument(
        "--bits", type=int, default=None, help="RSA key size (default 2048, at least 2048)"
    )
    parser.add_argument("--force", action="store_true", help="replace existing key files")
    parser.set_defaults(run=run_keygen)


def run_keygen(args: argparse.Namespace) -> int:
    if args.key_type == "ec" and args.bits is not None:
        raise UsageError("--bits applies to RSA keys only: an ec key is always P-256")
    out: Path = args.out
    private_path, public_path = out / "private_key.pem", out / "public.pem"
    if not args.force:
        for path in (private_path, public_path):
            if path.exists():
                raise UsageError(f"{path} already exists: pass --force to replace the key pair")
    key = keys.generate_private_key(args.key_type, args.bits or 2048)
    try:
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {out}: {exc.strerror or exc}") from None
    keys.write_private_file(private_path, keys.private_key_pem(key), overwrite=args.force)
    public_path.write_bytes(keys.public_key_pem(key.public_key()))
    print(f"wrote {private_path} (private, mode 0600: keep it on the API server only)")
    print(f"wrote {public_path} (public)")
    print(f"key ID (kid): {keys.key_id(key)}  algorithm: {keys.algorithm(key)}")
    return 0


# jwks ---------------------------------------------------------------------------------------


def _register_jwks(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "jwks",
        help="JWKS of one or more public keys, with the key IDs kube-apiserver uses",
        description="Print (or write) a JWKS with one key per file. Give the previous key too "
        "while rotating, so tokens it signed keep verifying. A private key file is accepted; "
        "only its public half is published.",
    )
    parser.add_argument("public_keys", nargs="+", type=Path, metavar="PUBLIC_PEM")
    parser.add_argument(
        "--legacy-empty-kid",
        action="store_true",
        help="also publish the first key with an empty kid, for tokens from "
        "API servers before 1.16 that signed without one",
    )
    parser.add_argument("--out", type=Path, metavar="FILE", help="write here instead of stdout")
    parser.set_defaults(run=run_jwks)


def run_jwks(args: argparse.Namespace) -> int:
    public_keys = [keys.load_public_key(path) for path in args.public_keys]
    document = build_jwks(public_keys, legacy_empty_kid=args.legacy_empty_kid)
    _write_output(jwks_json(document), args.out)
    return 0


# token --------------------------------------------------------------------------------------


def _positive_seconds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be a positive number of seconds")
    return value


def _register_token(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "token",
        help="mint a token shaped like a projected ServiceAccount token (for testing)",
        description="Print a compact JWS with the header and claims kube-apiserver puts in "
        "projected ServiceAccount tokens, signed with the given key. For testing an issuer, "
        "a trust policy or STS without a cluster. The token is printed: treat it as a secret.",
    )
    parser.add_argument(
        "--signing-key",
        required=True,
        type=Path,
        metavar="PEM",
        help="the private key (as given to --service-account-signing-key-file)",
    )
    parser.add_argument("--issuer", required=True, metavar="URL")
    parser.add_argument("--namespace", required=True, metavar="NS")
    parser.add_argument("--service-account", required=True, metavar="SA")
    parser.add_argument(
        "--audience",
        action="append",
        metavar="A",
        help=f"audience (repeatable; default {DEFAULT_TOKEN_AUDIENCE})",
    )
    parser.add_argument(
        "--expiration",
        type=_positive_seconds,
        default=DEFAULT_TOKEN_SECONDS,
        metavar="SECONDS",
        help=f"lifetime in seconds (default {DEFAULT_TOKEN_SECONDS})",
    )
    parser.add_argument("--pod", metavar="NAME", help="bind the token to a pod of this name")
    parser.set_defaults(run=run_token)


def run_token(args: argparse.Namespace) -> int:
    issuer = validate_issuer(args.issuer)
    for flag, value in (
        ("--namespace", args.namespace),
        ("--service-account", args.service_account),
    ):
        if not value or ":" in value:
            raise UsageError(f"{flag} {value!r} must be a non-empty name without ':'")
    key = keys.load_private_key(args.signing_key)
    claims = service_account_claims(
        issuer=issuer,
        namespace=args.namespace,
        service_account=args.service_account,
        audiences=args.audience or [DEFAULT_TOKEN_AUDIENCE],
        expiration=args.expiration,
        pod=args.pod,
    )
    print(sign_token(claims, key))
    return 0
