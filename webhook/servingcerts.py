"""The webhook's serving certificate for a cluster: a CA the API server trusts (the caBundle) and
the certificate it signs for the Service's DNS names, as files kustomize turns into the TLS Secret.

The CA is kept across renewals so the caBundle in the webhook configuration never has to change.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature

from webhook.certificates import KeyAndCert, create_ca, issue_serving_cert, seconds_until_expiry
from webhook.errors import UsageError

DEFAULT_SERVICE = "irsa-webhook"
DEFAULT_NAMESPACE = "irsa-webhook"
DEFAULT_DAYS = 365
CA_DAYS = 3650
MAX_DAYS = 1825  # well inside the CA's lifetime
# Service and namespace names are DNS-1123 labels; anything else can never be in the cert's SANs.
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True, slots=True)
class CertFiles:
    """Where everything lives, named as a `kubernetes.io/tls` Secret names its keys."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def tls_cert(self) -> Path:
        return self.directory / "tls.crt"

    @property
    def tls_key(self) -> Path:
        return self.directory / "tls.key"

    def all(self) -> tuple[Path, ...]:
        return (self.ca_cert, self.ca_key, self.tls_cert, self.tls_key)


@dataclass(frozen=True, slots=True)
class Provisioned:
    files: CertFiles
    names: tuple[str, ...]
    ca_created: bool
    ca_bundle: str  # base64 of ca.crt, as webhooks[].clientConfig.caBundle holds it


def service_dns_names(service: str, namespace: str) -> tuple[str, ...]:
    """Every name a client inside the cluster may use for the Service (the API server uses .svc)."""
    for what, value in (("--service", service), ("--namespace", namespace)):
        if not _DNS_LABEL.match(value):
            raise UsageError(
                f"{what} {value!r} is not a valid Kubernetes name "
                "(lower-case letters, digits and '-', at most 63 characters)"
            )
    return (
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
    )


def ca_bundle(ca_cert_pem: bytes) -> str:
    return base64.b64encode(ca_cert_pem).decode("ascii")


def provision(
    directory: Path,
    service: str = DEFAULT_SERVICE,
    namespace: str = DEFAULT_NAMESPACE,
    days: int = DEFAULT_DAYS,
    *,
    force: bool = False,
) -> Provisioned:
    """Create the CA (unless one is there and --force renews) and a fresh serving certificate.

    Every check runs before the first write, so a refused run leaves the directory as it was.
    """
    names = service_dns_names(service, namespace)
    if not 1 <= days <= MAX_DAYS:
        raise UsageError(f"--days {days} is out of range 1-{MAX_DAYS}")
    files = CertFiles(directory)
    existing = [path for path in files.all() if path.exists()]
    if existing and not force:
        raise UsageError(
            f"{existing[0]} already exists: pass --force to renew the serving certificate "
            "(an existing CA is kept, so the caBundle stays the same)"
        )
    ca = _existing_ca(files, days)
    ca_created = ca is None
    if ca is None:
        ca = create_ca("irsa-webhook CA", days=CA_DAYS)
    serving = issue_serving_cert(ca, names, days)
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if ca_created:
            ca.write(files.ca_cert, files.ca_key, overwrite=force)
        serving.write(files.tls_cert, files.tls_key, overwrite=force)
    except OSError as exc:
        raise UsageError(f"cannot write to {directory}: {exc.strerror or exc}") from None
    return Provisioned(files, names, ca_created, ca_bundle(files.ca_cert.read_bytes()))


def _existing_ca(files: CertFiles, days: int) -> KeyAndCert | None:
    """The CA to renew with: both files present, matching, and valid longer than the new cert."""
    if not (files.ca_cert.exists() and files.ca_key.exists()):
        return None
    try:
        ca = KeyAndCert.load(files.ca_cert, files.ca_key)
        ca.cert.verify_directly_issued_by(ca.cert)
    except (OSError, ValueError, TypeError, InvalidSignature) as exc:
        raise UsageError(
            f"{files.ca_cert} and {files.ca_key} are not a usable CA pair ({exc}): "
            "remove both to make a new CA (the caBundle then changes)"
        ) from None
    if ca.cert.public_key() != ca.key.public_key():
        raise UsageError(
            f"{files.ca_key} is not the key of {files.ca_cert}: "
            "remove both to make a new CA (the caBundle then changes)"
        )
    if seconds_until_expiry(ca.cert) < days * 86400:
        expiry = ca.cert.not_valid_after_utc.date().isoformat()
        raise UsageError(
            f"{files.ca_cert} expires on {expiry}, before the {days} days asked for: "
            "pass fewer --days, or remove ca.crt and ca.key to make a new CA "
            "(the caBundle then changes)"
        )
    return ca
