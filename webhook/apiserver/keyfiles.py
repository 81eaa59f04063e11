"""The service-account key pair kube-apiserver will use: checked together, installed as copies.

Copies are named after the key ID so a later rotation installs beside the current pair instead of
over it: the flags that keep old tokens valid must still point at the old public key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from webhook.errors import UsageError
from webhook.oidc.keys import (
    PrivateKey,
    PublicKey,
    key_id,
    load_private_key,
    load_public_key,
    private_key_pem,
    public_key_pem,
    same_key_pair,
    write_private_file,
)

# kubelite strips quotes and splits on spaces, so such paths cannot survive the args file.
_UNSAFE_IN_PATHS = (" ", "\t", "'", '"', "\n", "$")


@dataclass(frozen=True)
class SigningKeyPair:
    public: PublicKey
    private: PrivateKey

    @classmethod
    def load(cls, public_path: Path | str, private_path: Path | str) -> SigningKeyPair:
        """Both keys parse and belong together, or one UsageError naming the file at fault."""
        public = load_public_key(public_path)
        private = load_private_key(private_path)
        if not same_key_pair(public, private):
            raise UsageError(
                f"{public_path} is not the public half of {private_path}: "
                "tokens signed with that key would not validate"
            )
        return cls(public, private)

    @property
    def kid(self) -> str:
        return key_id(self.public)

    @property
    def public_name(self) -> str:
        return f"sa-signer-{self.kid[:16]}.pub"

    @property
    def private_name(self) -> str:
        return f"sa-signer-{self.kid[:16]}.key"

    def public_bytes(self) -> bytes:
        return public_key_pem(self.public)

    def private_bytes(self) -> bytes:
        return private_key_pem(self.private)


def check_path_for_args(path: str, what: str) -> str:
    if any(char in path for char in _UNSAFE_IN_PATHS):
        raise UsageError(
            f"{what} {path!r} contains a space, quote or '$': MicroK8s would split or mangle it"
        )
    return path


def _holds_same_key(path: Path, expected: PublicKey) -> bool:
    try:
        return key_id(load_public_key(path)) == key_id(expected)
    except UsageError:
        return False


def pending_copies(pair: SigningKeyPair, key_dir: Path) -> list[Path]:
    """The copies that are missing or hold something else (so a second run installs nothing)."""
    return [
        path
        for path in (key_dir / pair.private_name, key_dir / pair.public_name)
        if not (path.is_file() and _holds_same_key(path, pair.public))
    ]


def install_copies(pair: SigningKeyPair, key_dir: Path) -> list[Path]:
    """Write the missing copies: the private one 0600 from creation, the public one 0644."""
    pending = pending_copies(pair, key_dir)
    if not pending:
        return []
    key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for path in pending:
        if path.name == pair.private_name:
            write_private_file(path, pair.private_bytes(), overwrite=True)
        else:
            _write_public_file(path, pair.public_bytes())
    return pending


def _write_public_file(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
