"""Keys and JWKS: the kid kube-apiserver uses, public members only, files created safely."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from conftest import run_cli
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from oidc_support import private_members_in

from webhook.cli import main
from webhook.oidc import keys
from webhook.oidc.jwks import build_jwks, key_from_jwk, public_jwk

# Public test vectors from kubernetes/kubernetes pkg/serviceaccount/jwt_test.go
# (rsaPublicKey / rsaKeyID and ecdsaPublicKey / ecdsaKeyID): the key IDs kube-apiserver
# puts in tokens signed with these keys.
K8S_RSA_PUBLIC_KEY = b"""-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA249XwEo9k4tM8fMxV7zx
OhcrP+WvXn917koM5Qr2ZXs4vo26e4ytdlrV0bQ9SlcLpQVSYjIxNfhTZdDt+ecI
zshKuv1gKIxbbLQMOuK1eA/4HALyEkFgmS/tleLJrhc65tKPMGD+pKQ/xhmzRuCG
51RoiMgbQxaCyYxGfNLpLAZK9L0Tctv9a0mJmGIYnIOQM4kC1A1I1n3EsXMWmeJU
j7OTh/AjjCnMnkgvKT2tpKxYQ59PgDgU8Ssc7RDSmSkLxnrv+OrN80j6xrw0OjEi
B4Ycr0PqfzZcvy8efTtFQ/Jnc4Bp1zUtFXt7+QeevePtQ2EcyELXE0i63T1CujRM
WwIDAQAB
-----END PUBLIC KEY-----
"""
K8S_RSA_KEY_ID = "JHJehTTTZlsspKHT-GaJxK7Kd1NQgZJu3fyK6K_QDYU"
K8S_ECDSA_PUBLIC_KEY = b"""-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEH6cuzP8XuD5wal6wf9M6xDljTOPL
X2i8uIp/C/ASqiIGUeeKQtX0/IR3qCXyThP/dbCiHrF3v1cuhBOHY8CLVg==
-----END PUBLIC KEY-----
"""
K8S_ECDSA_KEY_ID = "SoABiieYuNx4UdqYvZRVeuC6SihxgLrhLy9peHMHpTc"


@pytest.mark.parametrize(
    ("pem", "kid", "alg"),
    [
        (K8S_RSA_PUBLIC_KEY, K8S_RSA_KEY_ID, "RS256"),
        (K8S_ECDSA_PUBLIC_KEY, K8S_ECDSA_KEY_ID, "ES256"),
    ],
)
def test_jwks_kid_matches_kubernetes_test_vectors(
    tmp_path: Path, pem: bytes, kid: str, alg: str
) -> None:
    path = tmp_path / "public.pem"
    path.write_bytes(pem)
    assert main(["oidc", "jwks", str(path), "--out", str(tmp_path / "jwks.json")]) == 0
    (jwk,) = json.loads((tmp_path / "jwks.json").read_text())["keys"]
    assert (jwk["kid"], jwk["alg"], jwk["use"]) == (kid, alg, "sig")


def test_jwk_round_trips_to_the_same_public_key() -> None:
    for pem in (K8S_RSA_PUBLIC_KEY, K8S_ECDSA_PUBLIC_KEY):
        public = serialization.load_pem_public_key(pem)
        assert keys.key_id(key_from_jwk(public_jwk(public))) == keys.key_id(public)


def test_ec_coordinates_keep_leading_zeros() -> None:
    """RFC 7518 wants 32-byte x and y even when a coordinate is small; search for such a key."""
    for _ in range(2000):  # about 1 key in 128 has a leading zero byte in x or y
        key = ec.generate_private_key(ec.SECP256R1())
        numbers = key.public_key().public_numbers()
        if numbers.x.bit_length() <= 248 or numbers.y.bit_length() <= 248:
            break
    else:
        pytest.fail("no EC key with a short coordinate in 2000 tries")
    jwk = public_jwk(key)
    for name in ("x", "y"):
        assert len(jwk[name]) == 43  # 32 bytes, unpadded base64url
    assert keys.key_id(key_from_jwk(jwk)) == keys.key_id(key)


def test_jwks_of_private_key_files_publishes_only_public_members(tmp_path: Path) -> None:
    assert main(["oidc", "keygen", "--out", str(tmp_path / "rsa")]) == 0
    assert main(["oidc", "keygen", "--out", str(tmp_path / "ec"), "--type", "ec"]) == 0
    out = tmp_path / "jwks.json"
    argv = ["oidc", "jwks", str(tmp_path / "rsa" / "private_key.pem")]
    argv += [str(tmp_path / "ec" / "private_key.pem"), "--legacy-empty-kid", "--out", str(out)]
    assert main(argv) == 0
    text = out.read_text()
    document = json.loads(text)
    assert not private_members_in(document)
    assert "PRIVATE" not in text
    rsa_kid = keys.key_id(keys.load_public_key(tmp_path / "rsa" / "public.pem"))
    ec_kid = keys.key_id(keys.load_public_key(tmp_path / "ec" / "public.pem"))
    assert [k["kid"] for k in document["keys"]] == [rsa_kid, ec_kid, ""]
    # the legacy entry is the first key again, under an empty kid
    assert {**document["keys"][2], "kid": rsa_kid} == document["keys"][0]


def test_jwks_keeps_one_entry_per_key_during_rotation() -> None:
    old, new = (ec.generate_private_key(ec.SECP256R1()) for _ in range(2))
    jwks = build_jwks([new.public_key(), old.public_key(), new])
    assert [k["kid"] for k in jwks["keys"]] == [keys.key_id(new), keys.key_id(old)]


def test_keygen_writes_pkcs8_and_spki_and_a_matching_pair(tmp_path: Path) -> None:
    assert main(["oidc", "keygen", "--out", str(tmp_path), "--type", "ec"]) == 0
    private_text = (tmp_path / "private_key.pem").read_text()
    assert private_text.startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8
    assert (tmp_path / "public.pem").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    private = keys.load_private_key(tmp_path / "private_key.pem")
    assert keys.same_key_pair(keys.load_public_key(tmp_path / "public.pem"), private)


def test_keygen_private_key_is_never_more_open_than_0600(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even with umask 000, every file keygen creates holding the key starts out owner-only."""
    modes_at_creation: dict[str, int] = {}
    real_open = os.open

    def watching_open(path, flags, mode=0o777, *args, **kwargs):  # type: ignore[no-untyped-def]
        fd = real_open(path, flags, mode, *args, **kwargs)
        if flags & os.O_CREAT:
            modes_at_creation[str(path)] = stat.S_IMODE(os.fstat(fd).st_mode)
        return fd

    monkeypatch.setattr(os, "open", watching_open)
    old_umask = os.umask(0)
    try:
        assert main(["oidc", "keygen", "--out", str(tmp_path / "keys")]) == 0
    finally:
        os.umask(old_umask)
    secret_files = [p for p in modes_at_creation if "private_key" in p]
    assert secret_files, modes_at_creation
    assert all(modes_at_creation[p] == 0o600 for p in secret_files), modes_at_creation
    assert stat.S_IMODE((tmp_path / "keys" / "private_key.pem").stat().st_mode) == 0o600


def test_keygen_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    assert main(["oidc", "keygen", "--out", str(tmp_path)]) == 0
    before = (tmp_path / "private_key.pem").read_bytes()
    result = run_cli("oidc", "keygen", "--out", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "--force" in result.stderr
    assert (tmp_path / "private_key.pem").read_bytes() == before
    assert main(["oidc", "keygen", "--out", str(tmp_path), "--force"]) == 0
    assert (tmp_path / "private_key.pem").read_bytes() != before
    assert stat.S_IMODE((tmp_path / "private_key.pem").stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "argv",
    [["--bits", "1024"], ["--type", "ec", "--bits", "4096"]],
)
def test_keygen_refuses_weak_or_meaningless_sizes(tmp_path: Path, argv: list[str]) -> None:
    result = run_cli("oidc", "keygen", "--out", str(tmp_path), *argv)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_jwks_refuses_a_file_that_is_not_a_key(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    result = run_cli("oidc", "jwks", str(path))
    assert result.returncode == 2
    assert result.stderr.startswith("irsa-webhook: ") and str(path) in result.stderr
    assert len(result.stderr.splitlines()) == 1
