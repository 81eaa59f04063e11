"""`serve --dev`: a webhook on 127.0.0.1 with no cluster, for trying it and for `review --server`.

Paths are relative to the working directory, as the README's quick start runs from the clone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature

from webhook.certificates import KeyAndCert, create_ca, issue_serving_cert, seconds_until_expiry

DEV_CERT_DIR = Path("certs/dev")
DEV_SERVICE_ACCOUNTS = Path("examples/serviceaccounts.yaml")
DEV_POD = Path("examples/pod.yaml")
DEV_HOST = "127.0.0.1"
DEV_NAMES = ("localhost", "127.0.0.1")
# Re-issue the dev serving certificate when it has less than a day left.
_MIN_SECONDS_LEFT = 86400.0


@dataclass(frozen=True, slots=True)
class DevCerts:
    ca_file: Path
    cert_file: Path
    key_file: Path


def ensure_dev_certs(directory: Path = DEV_CERT_DIR) -> DevCerts:
    """Create the dev CA and serving certificate if absent; keep them when present and valid.

    Keeping the CA across runs means a `--ca-file` the user already points at stays good.
    """
    certs = DevCerts(directory / "ca.crt", directory / "tls.crt", directory / "tls.key")
    ca_key = directory / "ca.key"
    directory.mkdir(parents=True, exist_ok=True)
    if certs.ca_file.exists() and ca_key.exists():
        ca = KeyAndCert.load(certs.ca_file, ca_key)
    else:
        ca = create_ca("irsa-webhook dev CA")
        ca.write(certs.ca_file, ca_key, overwrite=True)
    if _serving_cert_usable(certs, ca):
        return certs
    issue_serving_cert(ca, DEV_NAMES).write(certs.cert_file, certs.key_file, overwrite=True)
    return certs


def _serving_cert_usable(certs: DevCerts, ca: KeyAndCert) -> bool:
    if not (certs.cert_file.exists() and certs.key_file.exists()):
        return False
    try:
        current = KeyAndCert.load(certs.cert_file, certs.key_file)
        current.cert.verify_directly_issued_by(ca.cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return seconds_until_expiry(current.cert) > _MIN_SECONDS_LEFT


def follow_up_command(port: int, ca_file: Path = DEV_CERT_DIR / "ca.crt") -> str:
    """What the user runs next: send the example pod to this server (review's audit path)."""
    return (
        f"irsa-webhook review {DEV_POD} --server https://{DEV_HOST}:{port} "
        f"--ca-file {ca_file} --output pod"
    )
