"""`oidc discovery` and `oidc site`: documents STS accepts, where the issuer serves them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli
from oidc_support import assert_nothing_private, pyjwt_decode

from webhook.cli import main
from webhook.oidc import keys
from webhook.oidc.token import service_account_claims, sign_token

ISSUER = "https://oidc.example.com/cluster-1"


@pytest.fixture
def key_dirs(tmp_path: Path) -> tuple[Path, Path]:
    rsa_dir, ec_dir = tmp_path / "rsa", tmp_path / "ec"
    assert main(["oidc", "keygen", "--out", str(rsa_dir)]) == 0
    assert main(["oidc", "keygen", "--out", str(ec_dir), "--type", "ec"]) == 0
    return rsa_dir, ec_dir


def test_site_default_layout_serves_a_jwks_that_verifies_tokens(
    key_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    rsa_dir, ec_dir = key_dirs
    out = tmp_path / "site"
    result = run_cli(
        "oidc", "site", "--issuer", ISSUER, "--out", str(out),
        # private key files on purpose: only their public halves may be written
        "--public-key", str(rsa_dir / "private_key.pem"),
        "--public-key", str(ec_dir / "private_key.pem"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    discovery = json.loads((out / ".well-known" / "openid-configuration").read_text())
    assert discovery["issuer"] == ISSUER
    assert discovery["jwks_uri"] == f"{ISSUER}/jwks.json"
    assert discovery["response_types_supported"] == ["id_token"]
    assert discovery["subject_types_supported"] == ["public"]
    assert discovery["id_token_signing_alg_values_supported"] == ["RS256", "ES256"]
    assert "sub" in discovery["claims_supported"]
    jwks = json.loads((out / "jwks.json").read_text())
    assert len(jwks["keys"]) == 2
    for key_dir in key_dirs:
        key = keys.load_private_key(key_dir / "private_key.pem")
        claims = service_account_claims(
            issuer=ISSUER, namespace="n", service_account="s", audiences=["a"], expiration=60
        )
        assert pyjwt_decode(sign_token(claims, key), jwks, audience="a", issuer=ISSUER)
    assert_nothing_private(out)
    assert "publish" in result.stdout.lower() and "verify" in result.stdout
    assert "PRIVATE" not in result.stdout


def test_site_lays_the_jwks_at_the_api_server_path(
    key_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "site"
    argv = ["oidc", "site", "--issuer", ISSUER, "--out", str(out)]
    argv += ["--public-key", str(key_dirs[0] / "public.pem")]
    argv += ["--jwks-uri", f"{ISSUER}/openid/v1/jwks", "--legacy-empty-kid"]
    assert main(argv) == 0
    discovery = json.loads((out / ".well-known" / "openid-configuration").read_text())
    assert discovery["jwks_uri"] == f"{ISSUER}/openid/v1/jwks"
    jwks = json.loads((out / "openid" / "v1" / "jwks").read_text())
    assert [k["kid"] for k in jwks["keys"]][1:] == [""]
    assert not (out / "jwks.json").exists()
    assert_nothing_private(out)


@pytest.mark.parametrize(
    "jwks_uri",
    [
        "https://elsewhere.example.com/jwks.json",
        "https://oidc.example.com/cluster-2/jwks.json",
        "https://oidc.example.com/cluster-1",
        "https://oidc.example.com/cluster-1/../keys.json",
        "https://oidc.example.com/cluster-1/jwks.json?v=2",
        "https://oidc.example.com/cluster-1/keys/",
        "http://oidc.example.com/cluster-1/jwks.json",
    ],
)
def test_site_refuses_a_jwks_uri_it_cannot_serve(
    key_dirs: tuple[Path, Path], tmp_path: Path, jwks_uri: str
) -> None:
    out = tmp_path / "site"
    result = run_cli(
        "oidc", "site", "--issuer", ISSUER, "--out", str(out),
        "--public-key", str(key_dirs[0] / "public.pem"), "--jwks-uri", jwks_uri,
    )  # fmt: skip
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and "--jwks-uri" in result.stderr
    assert not out.exists()


def test_site_refuses_a_directory_holding_a_private_key(key_dirs: tuple[Path, Path]) -> None:
    rsa_dir = key_dirs[0]
    before = sorted(p.name for p in rsa_dir.iterdir())
    argv = ["oidc", "site", "--issuer", ISSUER, "--out", str(rsa_dir)]
    assert main([*argv, "--public-key", str(rsa_dir / "public.pem")]) == 2
    assert sorted(p.name for p in rsa_dir.iterdir()) == before


@pytest.mark.parametrize(
    "issuer",
    [
        "http://oidc.example.com",
        "https://oidc.example.com/",
        "https://oidc.example.com/c?x=1",
        "https://oidc.example.com/c#frag",
        "oidc.example.com",
    ],
)
def test_discovery_and_site_refuse_bad_issuer_urls(
    key_dirs: tuple[Path, Path], tmp_path: Path, issuer: str, capsys: pytest.CaptureFixture[str]
) -> None:
    public = str(key_dirs[0] / "public.pem")
    out = tmp_path / "site"
    assert main(["oidc", "discovery", "--issuer", issuer]) == 2
    assert (
        main(["oidc", "site", "--issuer", issuer, "--public-key", public, "--out", str(out)]) == 2
    )
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.splitlines()) == 2
    assert not out.exists()


def test_discovery_command_defaults_and_api_server_jwks_uri(key_dirs: tuple[Path, Path]) -> None:
    result = run_cli("oidc", "discovery", "--issuer", ISSUER)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["jwks_uri"] == f"{ISSUER}/jwks.json"
    assert set(document["id_token_signing_alg_values_supported"]) == {"RS256", "ES256"}
    result = run_cli(
        "oidc", "discovery", "--issuer", ISSUER, "--jwks-uri", f"{ISSUER}/openid/v1/jwks",
        "--public-key", str(key_dirs[1] / "public.pem"),
    )  # fmt: skip
    document = json.loads(result.stdout)
    assert document["jwks_uri"] == f"{ISSUER}/openid/v1/jwks"
    assert document["id_token_signing_alg_values_supported"] == ["ES256"]
    assert "openid/v1/jwks" in run_cli("oidc", "discovery", "--help").stdout


def test_site_next_steps_name_the_github_repository_from_a_raw_issuer(
    key_dirs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    issuer = "https://raw.githubusercontent.com/acme/oidc-issuer/main"
    argv = ["oidc", "site", "--issuer", issuer, "--out", str(tmp_path / "site")]
    assert main([*argv, "--public-key", str(key_dirs[0] / "public.pem")]) == 0
    printed = capsys.readouterr().out
    assert "acme/oidc-issuer" in printed and "branch main" in printed
    assert f"oidc verify - --issuer {issuer}" in printed
