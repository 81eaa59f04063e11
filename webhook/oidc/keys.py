"""Signing keys: generate, load, write safely, and the key ID kube-apiserver gives them."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from webhook.errors import UsageError

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


def generate_private_key(key_type: str = "rsa", bits: int = 2048) -> PrivateKey:
    if key_type == "rsa":
        if bits < 2048:
            raise UsageError(f"--bits {bits} is too small: RSA keys must have at least 2048 bits")
        return rsa.generate_private_key(public_exponent=65537, key_size=bits)
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    raise UsageError(f"unknown key type {key_type!r}: use rsa or ec")


def private_key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_pem(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def write_private_file(path: Path, data: bytes, *, overwrite: bool = False) -> None:
    """Write secret bytes to a file that is mode 0600 from the moment it exists.

    The file is created with O_EXCL under a temporary name and renamed into place, so no reader
    ever sees it world-readable or half-written.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise UsageError(f"{path} already exists: pass --force to replace it")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o600)  # the umask may have taken bits away, never added: make it exact
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read(path: Path | str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


def load_private_key(path: Path | str) -> PrivateKey:
    data = _read(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{path} is not an unencrypted PEM private key ({exc})") from None
    return _supported(key, path)


def load_public_key(path: Path | str) -> PublicKey:
    """Load a public key; a private key file is accepted too and only its public half is used."""
    data = _read(path)
    if b"PRIVATE KEY" in data:
        return load_private_key(path).public_key()
    try:
        if b"BEGIN CERTIFICATE" in data:
            from cryptography import x509

            key = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise UsageError(f"{path} is not a PEM public key ({exc})") from None
    return _supported(key, path)


def _supported(key: object, path: Path | str):  # type: ignore[no-untyped-def]
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if isinstance(key.curve, ec.SECP256R1):
            return key
        raise UsageError(f"{path}: EC keys must be P-256 (ES256), not {key.curve.name}")
    raise UsageError(f"{path}: only RSA and P-256 EC keys can sign ServiceAccount tokens")


def key_id(key: PublicKey | PrivateKey) -> str:
    """The `kid` kube-apiserver puts in tokens: unpadded base64url of SHA-256 over the DER SPKI."""
    public = (
        key.public_key() if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) else key
    )
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def algorithm(key: PublicKey | PrivateKey) -> str:
    """The JWS algorithm kube-apiserver signs with for this key type."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "RS256"
    return "ES256"


def same_key_pair(public: PublicKey, private: PrivateKey) -> bool:
    return key_id(public) == key_id(private)
