"""The thumbprint IAM wants for an OIDC provider, from a real TLS handshake.

IAM documents it as the SHA-1 fingerprint of the last certificate in the chain the host
presents (`openssl s_client -showcerts`), the top intermediate or the root: not the leaf, and not
a root from our own trust store that the server never sent. Python's public ssl API gives only
the leaf before 3.13, so we read the presented chain from the SSL object itself
(SSL_get_peer_cert_chain underneath), which CPython has had since 3.10.
"""

from __future__ import annotations

import hashlib
import re
import socket
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from webhook.errors import CheckFailed, UsageError

DEFAULT_TIMEOUT = 10.0
_HEX40 = re.compile(r"^[0-9a-f]{40}$")


def normalize_thumbprint(text: str) -> str:
    """Accept IAM's form and openssl's (`AB:CD:...`); return 40 lowercase hex digits."""
    value = text.replace(":", "").strip().lower()
    if not _HEX40.match(value):
        raise UsageError(
            f"--thumbprint {text!r} is not a SHA-1 fingerprint (40 hex digits, colons allowed)"
        )
    return value


def sha1_thumbprint(der: bytes) -> str:
    # SHA-1 because that is what IAM compares, not as a security choice of ours.
    return hashlib.sha1(der, usedforsecurity=False).hexdigest()


def _der_chain(tls: ssl.SSLSocket) -> list[bytes]:
    public = getattr(tls, "get_unverified_chain", None)  # Python 3.13+
    chain: list[Any] = public() if public else tls._sslobj.get_unverified_chain()  # type: ignore[union-attr]
    # 3.13 returns DER bytes; the 3.10-3.12 objects give PEM by default.
    return [
        item if isinstance(item, bytes) else ssl.PEM_cert_to_DER_cert(item.public_bytes())
        for item in chain or []
    ]


def presented_chain(
    host: str, port: int, *, ca_file: Path | None = None, timeout: float = DEFAULT_TIMEOUT
) -> list[bytes]:
    """The DER certificates the server sends, leaf first, after verifying them for `host`.

    Verification matters: an unverified handshake would let anyone on the path choose the
    thumbprint IAM will trust.
    """
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    where = f"{host}:{port}"
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            chain = _der_chain(tls)
    except ssl.SSLCertVerificationError as exc:
        hint = "" if ca_file else " (pass --ca-file for a private CA)"
        raise CheckFailed(
            f"TLS certificate of {where} not trusted: {exc.verify_message}{hint}"
        ) from None
    except ssl.SSLError as exc:
        raise CheckFailed(f"TLS handshake with {where} failed: {exc.reason or exc}") from None
    except TimeoutError:
        raise CheckFailed(f"no TLS answer from {where} within {timeout:g} s") from None
    except OSError as exc:
        raise CheckFailed(f"cannot connect to {where}: {exc.strerror or exc}") from None
    if not chain:
        raise CheckFailed(f"{where} presented no certificate")
    return chain


def issuer_address(issuer: str) -> tuple[str, int]:
    parts = urlsplit(issuer)
    try:
        port = parts.port or 443
    except ValueError:
        raise UsageError(f"issuer {issuer!r} has an invalid port") from None
    assert parts.hostname is not None  # validate_issuer guarantees a host
    return parts.hostname, port


def issuer_thumbprint(
    issuer: str, *, ca_file: Path | None = None, timeout: float = DEFAULT_TIMEOUT
) -> str:
    """SHA-1 of the last certificate the issuer's host presents."""
    host, port = issuer_address(issuer)
    return sha1_thumbprint(presented_chain(host, port, ca_file=ca_file, timeout=timeout)[-1])
