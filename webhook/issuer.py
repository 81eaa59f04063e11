"""The issuer URL rule shared by the OIDC toolkit, the API-server configuration and the AWS side.

kube-apiserver, the discovery document and IAM compare the issuer as an exact string, so we
refuse anything that could be written two ways.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from webhook.errors import UsageError


def validate_issuer(url: str) -> str:
    """Return `url` unchanged when it is a valid issuer, else raise UsageError naming the fault."""
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise UsageError(f"issuer {url!r} must start with https:// (AWS STS only fetches https)")
    if not parts.hostname:
        raise UsageError(f"issuer {url!r} has no host")
    if parts.query or "?" in url:
        raise UsageError(f"issuer {url!r} must not have a query string")
    if parts.fragment or "#" in url:
        raise UsageError(f"issuer {url!r} must not have a fragment")
    if parts.username is not None or parts.password is not None:
        raise UsageError(f"issuer {url!r} must not carry credentials")
    if url.endswith("/"):
        raise UsageError(
            f"issuer {url!r} must not end with '/': it is compared as an exact string, "
            f"use {url.rstrip('/')!r}"
        )
    return url


def issuer_host_path(url: str) -> str:
    """The issuer without its scheme: the prefix IAM uses for condition keys (`<host/path>:sub`)."""
    return url.removeprefix("https://")
