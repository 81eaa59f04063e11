"""JSON Web Keys for the public half of ServiceAccount signing keys, and reading them back.

The `kid` is the one kube-apiserver stamps in the tokens it signs, so STS can find the key.
Only public members are ever written: the functions take public keys (a private key is reduced
to its public half first).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from webhook.errors import UsageError
from webhook.oidc.jws import ES256_COORDINATE_BYTES, b64url_decode, b64url_encode
from webhook.oidc.keys import PrivateKey, PublicKey, algorithm, key_id

PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


def _public(key: PublicKey | PrivateKey) -> PublicKey:
    if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        return key.public_key()
    return key


def _uint_b64(value: int) -> str:
    return b64url_encode(value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def public_jwk(key: PublicKey | PrivateKey, kid: str | None = None) -> dict[str, str]:
    """The JWK of the public half of `key`, with kube-apiserver's kid unless one is given."""
    public = _public(key)
    jwk = {
        "use": "sig",
        "kty": "RSA" if isinstance(public, rsa.RSAPublicKey) else "EC",
        "kid": key_id(public) if kid is None else kid,
        "alg": algorithm(public),
    }
    if isinstance(public, rsa.RSAPublicKey):
        numbers = public.public_numbers()
        jwk["n"] = _uint_b64(numbers.n)
        jwk["e"] = _uint_b64(numbers.e)
    else:
        point = public.public_numbers()
        jwk["crv"] = "P-256"
        # RFC 7518 6.2.1.2: coordinates are the full field size, leading zeros kept.
        jwk["x"] = b64url_encode(point.x.to_bytes(ES256_COORDINATE_BYTES, "big"))
        jwk["y"] = b64url_encode(point.y.to_bytes(ES256_COORDINATE_BYTES, "big"))
    return jwk


def build_jwks(
    keys: Iterable[PublicKey | PrivateKey], *, legacy_empty_kid: bool = False
) -> dict[str, list[dict[str, str]]]:
    """A JWKS with one entry per distinct key, in the order given.

    With `legacy_empty_kid`, the first key is published a second time with `kid: ""`, which is
    how tokens from API servers older than 1.16 (signed without a kid) find their key.
    """
    entries: list[dict[str, str]] = []
    seen: set[str] = set()
    for key in keys:
        jwk = public_jwk(key)
        if jwk["kid"] not in seen:
            seen.add(jwk["kid"])
            entries.append(jwk)
    if legacy_empty_kid and entries:
        entries.append({**entries[0], "kid": ""})
    return {"keys": entries}


def jwks_json(jwks: dict[str, Any]) -> str:
    return json.dumps(jwks, indent=2) + "\n"


def key_from_jwk(jwk: dict[str, Any]) -> PublicKey:
    """The public key a JWK describes; ValueError naming the fault when it is not usable."""
    kty = jwk.get("kty")
    try:
        if kty == "RSA":
            n = int.from_bytes(b64url_decode(str(jwk["n"])), "big")
            e = int.from_bytes(b64url_decode(str(jwk["e"])), "big")
            return rsa.RSAPublicNumbers(e, n).public_key()
        if kty == "EC":
            if jwk.get("crv") != "P-256":
                raise ValueError(f"EC key on curve {jwk.get('crv')!r}, only P-256 is supported")
            x, y = (b64url_decode(str(jwk[name])) for name in ("x", "y"))
            if len(x) != ES256_COORDINATE_BYTES or len(y) != ES256_COORDINATE_BYTES:
                raise ValueError("EC coordinates must be 32 bytes each")
            numbers = ec.EllipticCurvePublicNumbers(
                int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1()
            )
            return numbers.public_key()
    except KeyError as exc:
        raise ValueError(f"{kty} key lacks member {exc.args[0]!r}") from None
    raise ValueError(f"unsupported key type {kty!r}")


def parse_jwks(data: bytes | str, source: str) -> list[dict[str, Any]]:
    """The `keys` list of a serialized JWKS; ValueError naming `source` when it is not one."""
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{source} is not JSON ({exc})") from None
    return jwks_keys(document, source)


def jwks_keys(document: Any, source: str) -> list[dict[str, Any]]:
    """The `keys` list of a decoded JWKS; ValueError naming `source` when it is not one."""
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list) or not all(isinstance(k, dict) for k in keys):
        raise ValueError(f"{source} is not a JWKS: it needs a 'keys' list of objects")
    return keys


def load_jwks_file(path: Path | str) -> list[dict[str, Any]]:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return parse_jwks(data, str(path))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
