"""`irsa-webhook oidc`: the OIDC issuer toolkit (keys, JWKS, discovery, site, token, verify)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from webhook import argtypes
from webhook.errors import UsageError
from webhook.issuer import validate_issuer
from webhook.oidc import keys
from webhook.oidc.discovery import (
    APISERVER_JWKS_PATH,
    DEFAULT_JWKS_PATH,
    discovery_document,
    document_json,
    validate_jwks_uri,
)
from webhook.oidc.jwks import build_jwks, jwks_json, load_jwks_file
from webhook.oidc.site import next_steps, write_site
from webhook.oidc.token import service_account_claims, sign_token
from webhook.oidc.verify import (
    CLOCK_SKEW_SECONDS,
    DEFAULT_FETCH_TIMEOUT,
    verify_token_sync,
)
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
    _register_discovery(commands)
    _register_site(commands)
    _register_token(commands)
    _register_verify(commands)


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
        keys.write_private_file(private_path, keys.private_key_pem(key), overwrite=args.force)
        public_path.write_bytes(keys.public_key_pem(key.public_key()))
    except OSError as exc:
        raise UsageError(f"cannot write the key pair in {out}: {exc.strerror or exc}") from None
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
        type=argtypes.positive_whole_seconds,
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


# discovery and site -------------------------------------------------------------------------

JWKS_URI_HELP = (
    f"where the JWKS is served (default ISSUER/{DEFAULT_JWKS_PATH}; kube-apiserver serves its "
    f"own at ISSUER/{APISERVER_JWKS_PATH}: pass that URL to mirror the API server's layout)"
)


def _jwks_uri(args: argparse.Namespace) -> str | None:
    return validate_jwks_uri(args.jwks_uri) if args.jwks_uri else None


def _register_discovery(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "discovery",
        help="the OpenID discovery document (.well-known/openid-configuration)",
        description="Print (or write) the discovery document STS fetches first.",
    )
    parser.add_argument("--issuer", required=True, metavar="URL")
    parser.add_argument("--jwks-uri", metavar="URL", help=JWKS_URI_HELP)
    parser.add_argument(
        "--public-key",
        action="append",
        type=Path,
        default=[],
        metavar="PEM",
        help="list the signing algorithms of these keys (default: RS256 and ES256)",
    )
    parser.add_argument("--out", type=Path, metavar="FILE", help="write here instead of stdout")
    parser.set_defaults(run=run_discovery)


def run_discovery(args: argparse.Namespace) -> int:
    issuer = validate_issuer(args.issuer)
    algorithms = [keys.algorithm(keys.load_public_key(path)) for path in args.public_key]
    document = discovery_document(issuer, _jwks_uri(args), algorithms)
    _write_output(document_json(document), args.out)
    return 0


def _register_site(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "site",
        help="discovery document and JWKS laid out for a static host (GitHub, S3, any)",
        description="Write DIR/.well-known/openid-configuration and the JWKS at the path of "
        "jwks_uri below the issuer, so that DIR served at the issuer URL is the issuer. Only "
        "public keys are written.",
    )
    parser.add_argument("--issuer", required=True, metavar="URL")
    parser.add_argument(
        "--public-key",
        action="append",
        required=True,
        type=Path,
        metavar="PEM",
        help="a signing key to publish (repeat for the previous key while rotating; "
        "a private key file is accepted, only its public half is written)",
    )
    parser.add_argument("--out", required=True, type=Path, metavar="DIR")
    parser.add_argument("--jwks-uri", metavar="URL", help=JWKS_URI_HELP + "; must be under ISSUER")
    parser.add_argument(
        "--legacy-empty-kid",
        action="store_true",
        help="also publish the first key with an empty kid (API servers before 1.16)",
    )
    parser.set_defaults(run=run_site)


def run_site(args: argparse.Namespace) -> int:
    issuer = validate_issuer(args.issuer)
    jwks_uri = _jwks_uri(args)
    public_keys = [keys.load_public_key(path) for path in args.public_key]
    site = write_site(
        args.out,
        issuer,
        public_keys,
        jwks_uri=jwks_uri,
        legacy_empty_kid=args.legacy_empty_kid,
    )
    sys.stdout.write(next_steps(site))
    return 0


# verify -------------------------------------------------------------------------------------

_LOOKS_LIKE_JWT = re.compile(r"^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$")


def _register_verify(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "verify",
        help="check a token the way AWS STS does, against the published issuer",
        description="Fetch the discovery document and the JWKS over HTTPS, check that the "
        "discovery issuer equals URL exactly, find the key by kid, verify the signature, then "
        f"iss, aud, exp and nbf ({CLOCK_SKEW_SECONDS} s clock skew allowed). Prints the claims "
        "as JSON; exit 1 names the first check that failed. To check a cluster, verify a pod's "
        "token: kubectl exec POD -- cat /var/run/secrets/eks.amazonaws.com/serviceaccount/token "
        "| irsa-webhook oidc verify - --issuer URL",
    )
    parser.add_argument("token_file", metavar="TOKEN_FILE|-", help="file holding the token, or -")
    parser.add_argument("--issuer", required=True, metavar="URL")
    parser.add_argument(
        "--audience",
        default=DEFAULT_TOKEN_AUDIENCE,
        metavar="A",
        help=f"audience the token must carry (default {DEFAULT_TOKEN_AUDIENCE})",
    )
    parser.add_argument(
        "--jwks", type=Path, metavar="FILE", help="take the keys from this JWKS; fetch nothing"
    )
    parser.add_argument(
        "--ca-file",
        type=Path,
        metavar="CA",
        help="trust this CA (PEM) for the issuer instead of the system store",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_FETCH_TIMEOUT,
        metavar="SECONDS",
        help=f"limit for each fetch (default {DEFAULT_FETCH_TIMEOUT:g})",
    )
    parser.set_defaults(run=run_verify)


def _read_token(source: str) -> str:
    if source == "-":
        token = sys.stdin.read().strip()
        where = "standard input"
    else:
        if _LOOKS_LIKE_JWT.match(source):
            raise UsageError(
                "TOKEN_FILE looks like a token itself: save it to a file or pipe it to `verify -`"
            )
        try:
            token = Path(source).read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not text"
            raise UsageError(f"cannot read the token from {source}: {reason}") from None
        where = source
    if not token:
        raise UsageError(f"no token in {where}")
    return token


def run_verify(args: argparse.Namespace) -> int:
    issuer = validate_issuer(args.issuer)
    if args.ca_file is not None and not args.ca_file.is_file():
        raise UsageError(f"--ca-file {args.ca_file} is not a file")
    if not 0 < args.timeout <= 300:
        raise UsageError(f"--timeout {args.timeout:g} must be between 0 and 300 seconds")
    jwks = load_jwks_file(args.jwks) if args.jwks else None
    verified = verify_token_sync(
        _read_token(args.token_file),
        issuer=issuer,
        audience=args.audience,
        jwks=jwks,
        jwks_source=str(args.jwks),
        ca_file=args.ca_file,
        timeout=args.timeout,
    )
    print(json.dumps(verified.claims, indent=2, sort_keys=True))
    print(
        f"token verified: {verified.alg} signature by kid {verified.kid!r} from "
        f"{verified.keys_from}; iss, aud, exp and nbf pass ({CLOCK_SKEW_SECONDS} s clock skew "
        "allowed)",
        file=sys.stderr,
    )
    return 0
