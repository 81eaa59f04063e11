"""Helpers shared by the OIDC toolkit tests: run the CLI, verify with PyJWT, look for secrets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jwt

PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def pyjwt_decode(token: str, jwks: dict[str, Any], *, audience: str, issuer: str) -> dict:
    """Verify `token` with PyJWT against the key of our JWKS that its header names."""
    header = jwt.get_unverified_header(token)
    (jwk,) = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
    return jwt.decode(
        token,
        jwt.PyJWK(jwk).key,
        algorithms=[jwk["alg"]],
        audience=audience,
        issuer=issuer,
    )


def private_members_in(value: Any) -> set[str]:
    """Every JWK private member name found anywhere inside a JSON value."""
    found: set[str] = set()
    if isinstance(value, dict):
        found |= PRIVATE_JWK_MEMBERS & set(value)
        for item in value.values():
            found |= private_members_in(item)
    elif isinstance(value, list):
        for item in value:
            found |= private_members_in(item)
    return found


def assert_nothing_private(directory: Path) -> None:
    for path in directory.rglob("*"):
        if not path.is_file():
            continue
        text = path.read_text()
        assert "PRIVATE KEY" not in text, path
        if text.strip():
            assert not private_members_in(json.loads(text)), path
