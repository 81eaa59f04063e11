"""Compact JWS (RFC 7515) for the two algorithms kube-apiserver signs ServiceAccount tokens with.

Written here rather than pulled in as a dependency: RS256 and ES256 over `cryptography` are a few
lines, and the one subtle point (ES256 signatures are raw r||s, not the DER that `cryptography`
produces) is easier to check in our own code than in a library's options.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from webhook.oidc.keys import PrivateKey, PublicKey, algorithm

SUPPORTED_ALGORITHMS = ("RS256", "ES256")
ES256_COORDINATE_BYTES = 32


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url strictly: JWS forbids padding and the standard alphabet."""
    if "=" in text or "+" in text or "/" in text:
        raise ValueError("not unpadded base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not base64url ({exc})") from None


def _json_segment(value: dict[str, Any]) -> str:
    return b64url_encode(json.dumps(value, separators=(",", ":"), sort_keys=False).encode())


def sign_compact(header: dict[str, Any], claims: dict[str, Any], key: PrivateKey) -> str:
    """Sign `claims` into a compact JWS; `header["alg"]` must match the key's algorithm."""
    alg = algorithm(key)
    if header.get("alg") != alg:
        raise ValueError(f"header alg {header.get('alg')!r} does not match the {alg} key")
    signing_input = f"{_json_segment(header)}.{_json_segment(claims)}".encode("ascii")
    return f"{signing_input.decode('ascii')}.{b64url_encode(_sign(key, signing_input))}"


def _sign(key: PrivateKey, data: bytes) -> bytes:
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(ES256_COORDINATE_BYTES, "big") + s.to_bytes(ES256_COORDINATE_BYTES, "big")


@dataclass(frozen=True)
class ParsedJWS:
    """A compact JWS split into its parts; nothing about it is trusted yet."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


def parse_compact(token: str) -> ParsedJWS:
    """Split and decode a compact JWS, raising ValueError with the reason it is malformed."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError(f"a compact JWS has 3 dot-separated parts, this has {len(parts)}")
    decoded: list[dict[str, Any]] = []
    for name, segment in zip(("header", "payload"), parts[:2], strict=True):
        try:
            value = json.loads(b64url_decode(segment))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"the {name} is not base64url-encoded JSON ({exc})") from None
        if not isinstance(value, dict):
            raise ValueError(f"the {name} is not a JSON object")
        decoded.append(value)
    try:
        signature = b64url_decode(parts[2])
    except ValueError as exc:
        raise ValueError(f"the signature is not base64url ({exc})") from None
    return ParsedJWS(decoded[0], decoded[1], f"{parts[0]}.{parts[1]}".encode("ascii"), signature)


def signature_valid(key: PublicKey, alg: str, signing_input: bytes, signature: bytes) -> bool:
    """True when `signature` over `signing_input` verifies with `key` under `alg`."""
    try:
        if alg == "RS256" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
            return True
        if alg == "ES256" and isinstance(key, ec.EllipticCurvePublicKey):
            if len(signature) != 2 * ES256_COORDINATE_BYTES:
                return False
            r = int.from_bytes(signature[:ES256_COORDINATE_BYTES], "big")
            s = int.from_bytes(signature[ES256_COORDINATE_BYTES:], "big")
            key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(hashes.SHA256()))
            return True
    except InvalidSignature:
        return False
    return False
