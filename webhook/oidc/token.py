"""Tokens shaped like kube-apiserver's projected ServiceAccount tokens.

For checking an issuer, a role's trust policy or STS itself without a cluster: the claims
are the ones the API server issues, so whatever accepts these accepts the real ones.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from webhook.oidc.jws import sign_compact
from webhook.oidc.keys import PrivateKey, algorithm, key_id


def service_account_subject(namespace: str, service_account: str) -> str:
    return f"system:serviceaccount:{namespace}:{service_account}"


def service_account_claims(
    *,
    issuer: str,
    namespace: str,
    service_account: str,
    audiences: list[str],
    expiration: int,
    pod: str | None = None,
    now: int | None = None,
) -> dict[str, Any]:
    """The claim set of a projected token; uids are fresh random UUIDs like the API server's."""
    issued_at = int(time.time()) if now is None else now
    kubernetes: dict[str, Any] = {"namespace": namespace}
    if pod:
        kubernetes["pod"] = {"name": pod, "uid": str(uuid.uuid4())}
    kubernetes["serviceaccount"] = {"name": service_account, "uid": str(uuid.uuid4())}
    return {
        "aud": list(audiences),
        "exp": issued_at + expiration,
        "iat": issued_at,
        "iss": issuer,
        "jti": str(uuid.uuid4()),
        "kubernetes.io": kubernetes,
        "nbf": issued_at,
        "sub": service_account_subject(namespace, service_account),
    }


def sign_token(claims: dict[str, Any], key: PrivateKey) -> str:
    """Sign with the header kube-apiserver uses: alg and kid, nothing else."""
    return sign_compact({"alg": algorithm(key), "kid": key_id(key)}, claims, key)
