"""Tokens minted here look like kube-apiserver's, and an independent JWT library accepts them."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import jwt
import pytest
from conftest import run_cli
from oidc_support import pyjwt_decode

from webhook.oidc import keys
from webhook.oidc.jwks import build_jwks
from webhook.oidc.jws import b64url_decode, parse_compact, signature_valid
from webhook.oidc.token import service_account_claims, sign_token

ISSUER = "https://oidc.example.com/cluster-1"


@pytest.fixture(params=["rsa", "ec"])
def key_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    result = run_cli("oidc", "keygen", "--out", str(tmp_path), "--type", request.param)
    assert result.returncode == 0, result.stderr
    return tmp_path


def test_cli_token_verifies_with_pyjwt_against_our_jwks(key_dir: Path) -> None:
    jwks = json.loads(run_cli("oidc", "jwks", str(key_dir / "public.pem")).stdout)
    result = run_cli(
        "oidc", "token", "--signing-key", str(key_dir / "private_key.pem"), "--issuer", ISSUER,
        "--namespace", "team-a", "--service-account", "s3-reader", "--pod", "reader-0",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    before = int(time.time())
    claims = pyjwt_decode(token, jwks, audience="sts.amazonaws.com", issuer=ISSUER)
    assert claims["sub"] == "system:serviceaccount:team-a:s3-reader"
    assert claims["aud"] == ["sts.amazonaws.com"]
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["nbf"] == claims["iat"] and abs(claims["iat"] - before) < 120
    k8s = claims["kubernetes.io"]
    assert k8s["namespace"] == "team-a"
    assert k8s["serviceaccount"]["name"] == "s3-reader"
    assert k8s["pod"]["name"] == "reader-0"
    for uid in (k8s["serviceaccount"]["uid"], k8s["pod"]["uid"]):
        assert uuid.UUID(uid).version == 4
    header = jwt.get_unverified_header(token)
    public = keys.load_public_key(key_dir / "public.pem")
    assert header == {"alg": keys.algorithm(public), "kid": keys.key_id(public)}


def test_cli_token_audiences_expiration_and_no_pod(key_dir: Path) -> None:
    result = run_cli(
        "oidc", "token", "--signing-key", str(key_dir / "private_key.pem"), "--issuer", ISSUER,
        "--namespace", "ns", "--service-account", "sa", "--audience", "a1", "--audience", "a2",
        "--expiration", "600",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    claims = parse_compact(result.stdout.strip()).claims
    assert claims["aud"] == ["a1", "a2"]
    assert claims["exp"] - claims["iat"] == 600
    assert "pod" not in claims["kubernetes.io"]


def test_es256_signature_is_raw_r_and_s() -> None:
    """JWS ES256 is 64 bytes r||s (RFC 7518 3.4), not the DER `cryptography` emits."""
    key = keys.generate_private_key("ec")
    token = sign_token(
        service_account_claims(
            issuer=ISSUER, namespace="n", service_account="s", audiences=["x"], expiration=60
        ),
        key,
    )
    assert len(b64url_decode(token.split(".")[2])) == 64
    parsed = parse_compact(token)
    assert signature_valid(key.public_key(), "ES256", parsed.signing_input, parsed.signature)


def test_library_tokens_verify_with_pyjwt_for_both_key_types() -> None:
    for key in (keys.generate_private_key("rsa"), keys.generate_private_key("ec")):
        claims = service_account_claims(
            issuer=ISSUER, namespace="n", service_account="s", audiences=["aud"], expiration=60
        )
        decoded = pyjwt_decode(
            sign_token(claims, key), build_jwks([key]), audience="aud", issuer=ISSUER
        )
        assert decoded == claims


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--issuer", "http://oidc.example.com"),
        ("--issuer", "https://oidc.example.com/"),
        ("--issuer", "https://oidc.example.com?x=1"),
        ("--issuer", "https://oidc.example.com#f"),
        ("--expiration", "0"),
        ("--namespace", "a:b"),
    ],
)
def test_cli_token_refuses_bad_input_in_one_line(tmp_path: Path, flag: str, value: str) -> None:
    key = keys.generate_private_key("ec")
    (tmp_path / "k.pem").write_bytes(keys.private_key_pem(key))
    argv = {
        "--signing-key": str(tmp_path / "k.pem"),
        "--issuer": ISSUER,
        "--namespace": "ns",
        "--service-account": "sa",
        "--expiration": "60",
    }
    argv[flag] = value
    result = run_cli("oidc", "token", *[x for pair in argv.items() for x in pair])
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr


def test_cli_token_refuses_a_public_key_as_signing_key(key_dir: Path) -> None:
    result = run_cli(
        "oidc", "token", "--signing-key", str(key_dir / "public.pem"), "--issuer", ISSUER,
        "--namespace", "ns", "--service-account", "sa",
    )  # fmt: skip
    assert result.returncode == 2
    assert "public.pem" in result.stderr and len(result.stderr.splitlines()) == 1
