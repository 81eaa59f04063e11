"""The serving TLS context, re-read from disk when cert-manager or the kubelet rotates the files.

Why a context swap and not `load_cert_chain` on the live context: loading a chain replaces the
certificate first and the key second, so a half-rotated pair (or a failed load) would leave the
listening context holding a certificate without its key. Instead each rotation builds a complete,
checked context, and the listening context's SNI callback (which OpenSSL calls for every
handshake, with or without SNI) hands new connections the newest one. Connections already open
keep the context they started with.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from webhook.certificates import seconds_until_expiry
from webhook.errors import UsageError

log = logging.getLogger("webhook.tls")

MIN_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}

# Go's crypto/tls names (what the reference and kube-apiserver accept) -> OpenSSL's names.
_GO_TO_OPENSSL = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256": "AES128-SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA": "DES-CBC3-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA": "ECDHE-RSA-DES-CBC3-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
# Python's ssl module cannot restrict TLS 1.3 suites: they are accepted and always enabled.
TLS13_SUITES = frozenset(
    {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
)


def openssl_ciphers(go_names: str) -> str | None:
    """`--tls-cipher-suites` (comma-separated Go names) as an OpenSSL list; None: defaults."""
    wanted = [name.strip() for name in go_names.split(",") if name.strip()]
    unknown = [n for n in wanted if n not in _GO_TO_OPENSSL and n not in TLS13_SUITES]
    if unknown:
        raise UsageError(f"--tls-cipher-suites: unknown cipher suite {unknown[0]!r} (use Go names)")
    chosen = [_GO_TO_OPENSSL[n] for n in wanted if n in _GO_TO_OPENSSL]
    return ":".join(dict.fromkeys(chosen)) or None


@dataclass(frozen=True, slots=True)
class TLSSettings:
    cert_file: Path
    key_file: Path
    min_version: str = "1.2"
    ciphers: str | None = None  # OpenSSL cipher list for TLS <= 1.2; None keeps OpenSSL's

    def build_context(self) -> ssl.SSLContext:
        """A complete server context; raises OSError or ssl.SSLError when the files are bad."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = MIN_VERSIONS[self.min_version]
        if self.ciphers:
            ctx.set_ciphers(self.ciphers)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx


def _file_stamp(*paths: Path) -> tuple[tuple[int, int, int, int], ...]:
    """What changes when a file is rewritten or a kubelet symlink swap points it elsewhere."""
    stamps = []
    for path in paths:
        st = os.stat(path)
        stamps.append((st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev))
    return tuple(stamps)


class ReloadingTLS:
    """The listening SSL context plus the newest good context built from the files on disk."""

    def __init__(self, settings: TLSSettings, check_interval: float = 1.0) -> None:
        self.settings = settings
        self.check_interval = check_interval
        try:
            self._stamp = _file_stamp(settings.cert_file, settings.key_file)
            self.context = settings.build_context()
            self.certificate = self._read_certificate()
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise UsageError(
                f"cannot load TLS certificate {settings.cert_file} with key {settings.key_file}: "
                f"{getattr(exc, 'strerror', None) or exc}"
            ) from None
        self._current = self.context
        self._failed_stamp: object = None
        self.reloads = 0
        self.context.sni_callback = self._hand_out_current

    def _hand_out_current(
        self, conn: ssl.SSLObject, server_name: str | None, ctx: ssl.SSLContext
    ) -> None:
        if self._current is not ctx:
            conn.context = self._current

    def _read_certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.settings.cert_file.read_bytes())

    def seconds_until_expiry(self) -> float:
        return seconds_until_expiry(self.certificate)

    def reload_if_changed(self) -> bool:
        """Swap in a new context when the files changed and form a valid pair; True if swapped.

        A half-written rotation fails to load: the old context stays and the next check retries.
        """
        try:
            stamp = _file_stamp(self.settings.cert_file, self.settings.key_file)
        except OSError as exc:
            self._warn_once(("missing", str(exc)), f"TLS files unreadable, keeping the old: {exc}")
            return False
        if stamp == self._stamp:
            return False
        try:
            context = self.settings.build_context()
            context.sni_callback = None
            certificate = self._read_certificate()
        except (OSError, ssl.SSLError, ValueError) as exc:
            self._warn_once(stamp, f"new TLS files do not load yet, keeping the old: {exc}")
            return False
        self._current, self.certificate, self._stamp = context, certificate, stamp
        self.reloads += 1
        log.info(
            "serving certificate reloaded",
            extra={
                "fields": {
                    "cert_file": str(self.settings.cert_file),
                    "subject": certificate.subject.rfc4514_string(),
                }
            },
        )
        return True

    def _warn_once(self, key: object, message: str) -> None:
        if key != self._failed_stamp:
            self._failed_stamp = key
            log.warning(message)

    async def watch(self) -> None:
        """Check the files every check_interval seconds until cancelled."""
        while True:
            await asyncio.sleep(self.check_interval)
            self.reload_if_changed()
