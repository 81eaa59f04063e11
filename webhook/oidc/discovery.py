"""The OpenID Connect discovery document STS reads first: where the issuer's keys are.

STS fetches `ISSUER/.well-known/openid-configuration`, requires its `issuer` to equal the
token's `iss` exactly, and then fetches `jwks_uri`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from webhook.errors import UsageError

WELL_KNOWN_PATH = ".well-known/openid-configuration"
DEFAULT_JWKS_PATH = "jwks.json"
# kube-apiserver serves its own JWKS here (ServiceAccountIssuerDiscovery); use it to mirror that.
APISERVER_JWKS_PATH = "openid/v1/jwks"
# What kube-apiserver signs with when the keys are not known.
DEFAULT_SIGNING_ALGORITHMS = ("RS256", "ES256")
CLAIMS_SUPPORTED = ("aud", "exp", "iat", "iss", "nbf", "sub")


def discovery_url(issuer: str) -> str:
    return f"{issuer}/{WELL_KNOWN_PATH}"


def default_jwks_uri(issuer: str) -> str:
    return f"{issuer}/{DEFAULT_JWKS_PATH}"


def validate_jwks_uri(url: str) -> str:
    """STS fetches the JWKS over HTTPS only; refuse anything it could not fetch."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise UsageError(f"--jwks-uri {url!r} must be an https:// URL (STS only fetches https)")
    if parts.fragment or "#" in url:
        raise UsageError(f"--jwks-uri {url!r} must not have a fragment")
    return url


def discovery_document(
    issuer: str, jwks_uri: str | None = None, algorithms: Iterable[str] = ()
) -> dict[str, Any]:
    """The document for `issuer`; `algorithms` are those of the published keys, in order."""
    signing_algorithms = list(dict.fromkeys(algorithms)) or list(DEFAULT_SIGNING_ALGORITHMS)
    return {
        "issuer": issuer,
        "jwks_uri": jwks_uri or default_jwks_uri(issuer),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": signing_algorithms,
        "claims_supported": list(CLAIMS_SUPPORTED),
    }


def document_json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2) + "\n"
