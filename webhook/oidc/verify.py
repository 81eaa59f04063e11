"""Check a token the way AWS STS does before AssumeRoleWithWebIdentity trusts it.

The checks run in STS's order and stop at the first failure, which is reported as one sentence
naming the check and what to fix. Fetches are HTTPS only, with certificate verification against
the system trust store (or a given CA file), bounded in time and size.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from webhook.errors import CheckFailed, UsageError
from webhook.oidc.discovery import discovery_url
from webhook.oidc.jwks import PRIVATE_MEMBERS, jwks_keys, key_from_jwk
from webhook.oidc.jws import SUPPORTED_ALGORITHMS, ParsedJWS, parse_compact, signature_valid

# Clocks differ between the API server, STS and this machine; allow this much either way
# on exp and nbf.
CLOCK_SKEW_SECONDS = 60
DEFAULT_FETCH_TIMEOUT = 10.0
MAX_DOCUMENT_BYTES = 1 << 20
_KTY_FOR_ALG = {"RS256": "RSA", "ES256": "EC"}


def failed(check: str, sentence: str) -> CheckFailed:
    return CheckFailed(f"token rejected at the {check!r} check: {sentence}")


@dataclass(frozen=True)
class Verified:
    claims: dict[str, Any]
    kid: str
    alg: str
    keys_from: str


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """Verify like STS: a trusted chain and the host name, TLS 1.2 or newer."""
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(
            f"--ca-file {ca_file}: cannot load it as PEM certificates ({exc})"
        ) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


async def fetch_json(session: aiohttp.ClientSession, url: str, check: str, what: str) -> Any:
    """GET `url` and parse it as JSON, turning every way that can fail into a check failure."""
    try:
        async with session.get(url, headers={"Accept": "application/json"}) as response:
            if response.url.scheme != "https":
                raise failed(check, f"{url} redirected to {response.url}, which is not https")
            if response.status != 200:
                raise failed(
                    check,
                    f"GET {url} returned HTTP {response.status}: publish the {what} there "
                    "(`irsa-webhook oidc site` lays it out)",
                )
            body = await response.content.read(MAX_DOCUMENT_BYTES + 1)
    except aiohttp.ClientConnectorCertificateError as exc:
        raise failed(
            check,
            f"the certificate of {url} is not trusted ({exc.certificate_error}): serve it with a "
            "certificate from a public CA, or pass --ca-file for a private one",
        ) from None
    except aiohttp.ClientSSLError as exc:
        raise failed(check, f"TLS with {url} failed ({exc}): STS needs valid HTTPS") from None
    except aiohttp.ClientError as exc:
        raise failed(check, f"cannot fetch {url} ({exc or type(exc).__name__})") from None
    except TimeoutError:
        raise failed(check, f"{url} did not answer in time (--timeout)") from None
    if len(body) > MAX_DOCUMENT_BYTES:
        raise failed(check, f"{url} is larger than {MAX_DOCUMENT_BYTES} bytes: not a {what}")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise failed(check, f"{url} is not JSON: is the {what} published there?") from None


async def fetch_published_keys(
    issuer: str, ca_file: Path | None, timeout: float
) -> tuple[list[dict[str, Any]], str]:
    """Discovery document, its issuer, then the JWKS it points to: STS's first three checks."""
    connector = aiohttp.TCPConnector(ssl=tls_context(ca_file))
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:
        url = discovery_url(issuer)
        document = await fetch_json(session, url, "discovery", "discovery document")
        if not isinstance(document, dict):
            raise failed("discovery", f"{url} is not a JSON object")
        published = document.get("issuer")
        if published != issuer:
            raise failed(
                "discovery issuer",
                f"the discovery document says issuer {published!r}, not {issuer!r}; they must be "
                f"the same string: regenerate it with `irsa-webhook oidc site --issuer {issuer}`",
            )
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith("https://"):
            raise failed(
                "discovery", f"the discovery document's jwks_uri {jwks_uri!r} is not an https URL"
            )
        jwks = await fetch_json(session, jwks_uri, "jwks", "JWKS")
    try:
        return jwks_keys(jwks, jwks_uri), jwks_uri
    except ValueError as exc:
        raise failed("jwks", str(exc)) from None


def _select_key(parsed: ParsedJWS, jwks: Sequence[dict[str, Any]], keys_from: str) -> Any:
    alg = parsed.header.get("alg")
    if alg not in SUPPORTED_ALGORITHMS:
        raise failed(
            "alg",
            f"the token is signed with {alg!r}; kube-apiserver signs with "
            f"{' or '.join(SUPPORTED_ALGORITHMS)} and nothing else is accepted here",
        )
    kid = parsed.header.get("kid", "")
    named = [jwk for jwk in jwks if jwk.get("kid", "") == kid]
    if not named:
        if not kid:
            raise failed(
                "kid",
                f"the token has no kid (an API server before 1.16?) and {keys_from} has no key "
                "with an empty kid: publish one with `irsa-webhook oidc jwks --legacy-empty-kid`",
            )
        known = ", ".join(repr(j.get("kid", "")) for j in jwks) or "none"
        raise failed(
            "kid",
            f"no key in {keys_from} has kid {kid!r} (it has: {known}): publish the API server's "
            "current public key with `irsa-webhook oidc jwks`, keeping the previous one while "
            "rotating",
        )
    usable = [j for j in named if j.get("kty") == _KTY_FOR_ALG[alg] and j.get("alg", alg) == alg]
    if not usable:
        raise failed(
            "kid",
            f"the key with kid {kid!r} in {keys_from} is not an {alg} key "
            f"(kty {named[0].get('kty')!r}, alg {named[0].get('alg')!r})",
        )
    try:
        return key_from_jwk(usable[0])
    except ValueError as exc:
        raise failed("kid", f"the key with kid {kid!r} in {keys_from} is unusable: {exc}") from None


def _timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_token(
    token: str,
    jwks: Sequence[dict[str, Any]],
    *,
    issuer: str,
    audience: str,
    keys_from: str,
    now: float | None = None,
) -> Verified:
    """The token checks, after the keys are in hand: alg and kid, signature, iss, aud, exp, nbf."""
    parsed = parse_token(token)
    for jwk in jwks:
        leaked = PRIVATE_MEMBERS & set(jwk)
        if leaked:
            raise failed(
                "jwks",
                f"{keys_from} publishes private key material (members {sorted(leaked)}): "
                "remove it and replace that signing key now",
            )
    key = _select_key(parsed, jwks, keys_from)
    alg, kid = parsed.header["alg"], parsed.header.get("kid", "")
    if not signature_valid(key, alg, parsed.signing_input, parsed.signature):
        raise failed(
            "signature",
            f"the signature does not verify with the key kid {kid!r} from {keys_from}: the token "
            "was altered, or signed by a different key than the one published under that kid",
        )
    claims = parsed.claims
    if claims.get("iss") != issuer:
        raise failed(
            "iss",
            f"the token's iss is {claims.get('iss')!r}, not {issuer!r}: kube-apiserver's "
            f"--service-account-issuer must be exactly {issuer} (then restart the pods so they "
            "get fresh tokens)",
        )
    audiences = claims.get("aud")
    audiences = [audiences] if isinstance(audiences, str) else audiences
    if not isinstance(audiences, list) or audience not in audiences:
        raise failed(
            "aud",
            f"the token's audience {claims.get('aud')!r} does not include {audience!r}: project "
            "the token for that audience (the webhook's --token-audience or the ServiceAccount's "
            "audience annotation) or pass the intended --audience",
        )
    current = time.time() if now is None else now
    expires = claims.get("exp")
    if not isinstance(expires, int | float):
        raise failed("exp", "the token has no numeric exp claim; STS requires one")
    if current > expires + CLOCK_SKEW_SECONDS:
        raise failed(
            "exp",
            f"the token expired at {_timestamp(expires)} ({int(current - expires)} s ago, "
            f"{CLOCK_SKEW_SECONDS} s clock skew allowed): use a fresh token",
        )
    not_before = claims.get("nbf")
    if isinstance(not_before, int | float) and current + CLOCK_SKEW_SECONDS < not_before:
        raise failed(
            "nbf",
            f"the token is not valid before {_timestamp(not_before)} "
            f"({int(not_before - current)} s from now, {CLOCK_SKEW_SECONDS} s clock skew "
            "allowed): check the clocks of the API server and of this machine",
        )
    return Verified(claims, kid, alg, keys_from)


def parse_token(token: str) -> ParsedJWS:
    try:
        return parse_compact(token)
    except ValueError as exc:
        raise failed("token format", f"this is not a JWT: {exc}") from None


async def verify_token(
    token: str,
    *,
    issuer: str,
    audience: str,
    jwks: Sequence[dict[str, Any]] | None = None,
    jwks_source: str = "the JWKS file",
    ca_file: Path | None = None,
    timeout: float = DEFAULT_FETCH_TIMEOUT,
    now: float | None = None,
) -> Verified:
    """Everything STS checks; with `jwks` given the keys come from there and nothing is fetched."""
    parse_token(token)
    if jwks is None:
        jwks, jwks_source = await fetch_published_keys(issuer, ca_file, timeout)
    return check_token(
        token, jwks, issuer=issuer, audience=audience, keys_from=jwks_source, now=now
    )


def verify_token_sync(token: str, **kwargs: Any) -> Verified:
    return asyncio.run(verify_token(token, **kwargs))
