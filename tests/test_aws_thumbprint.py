"""`aws thumbprint` against a real TLS host on 127.0.0.1 whose chain the test made, checked
against openssl's own view of the same handshake (the procedure IAM's documentation gives)."""

from __future__ import annotations

import re
import socket
import subprocess
from pathlib import Path

from aws_support import (
    Chain,
    assert_one_line_error,
    isolated_aws_env,
    make_chain,
    moto_env,
    moto_server,
    tls_host,
)
from conftest import run_cli
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from webhook.certificates import KeyAndCert


def openssl_sha1(cert: KeyAndCert, tmp_path: Path) -> str:
    """`openssl x509 -fingerprint -sha1`, as the IAM guide has users run it."""
    pem = tmp_path / "cert-to-fingerprint.pem"
    pem.write_bytes(cert.cert_pem)
    out = subprocess.run(
        ["openssl", "x509", "-in", str(pem), "-noout", "-fingerprint", "-sha1"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    return out.strip().split("=", 1)[1].replace(":", "").lower()


def openssl_last_presented_sha1(port: int) -> str:
    """The last certificate `openssl s_client -showcerts` prints, fingerprinted by cryptography."""
    out = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-showcerts"],
        input="", capture_output=True, text=True, timeout=30,
    ).stdout  # fmt: skip
    blocks = re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", out, re.S)
    assert blocks, out
    return x509.load_pem_x509_certificate(blocks[-1].encode()).fingerprint(hashes.SHA1()).hex()


def thumbprint(port: int, env: dict[str, str], *flags: str) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "aws", "thumbprint", "--issuer", f"https://127.0.0.1:{port}/cluster-1", *flags, env=env
    )


def write_root(chain: Chain, tmp_path: Path) -> str:
    path = tmp_path / "root.pem"
    path.write_bytes(chain.root.cert_pem)
    return str(path)


def test_thumbprint_is_the_intermediate_the_host_presents_last(tmp_path: Path) -> None:
    chain = make_chain()
    env = isolated_aws_env(tmp_path)
    with tls_host([chain.leaf, chain.intermediate], tmp_path) as port:
        result = thumbprint(port, env, "--ca-file", write_root(chain, tmp_path))
        from_openssl_handshake = openssl_last_presented_sha1(port)
    assert result.returncode == 0, result.stderr
    printed = result.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{40}", printed)
    assert printed == openssl_sha1(chain.intermediate, tmp_path)
    assert printed == from_openssl_handshake
    assert printed != openssl_sha1(chain.leaf, tmp_path)
    assert "presented 2 certificate(s)" in result.stderr


def test_a_host_that_also_sends_the_root_gives_the_root(tmp_path: Path) -> None:
    chain = make_chain()
    with tls_host([chain.leaf, chain.intermediate, chain.root], tmp_path) as port:
        result = thumbprint(
            port, isolated_aws_env(tmp_path), "--ca-file", write_root(chain, tmp_path)
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == openssl_sha1(chain.root, tmp_path)


def test_a_host_sending_only_its_leaf_gives_the_leaf_and_a_warning(tmp_path: Path) -> None:
    chain = make_chain()
    # A client that already holds the intermediate can still verify the leaf alone.
    ca_file = tmp_path / "root-and-intermediate.pem"
    ca_file.write_bytes(chain.root.cert_pem + chain.intermediate.cert_pem)
    with tls_host([chain.leaf], tmp_path) as port:
        result = thumbprint(port, isolated_aws_env(tmp_path), "--ca-file", str(ca_file))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == openssl_sha1(chain.leaf, tmp_path)
    assert "changes with every renewal" in result.stderr


def test_an_untrusted_host_is_refused_in_one_line(tmp_path: Path) -> None:
    chain = make_chain()
    with tls_host([chain.leaf, chain.intermediate], tmp_path) as port:
        result = thumbprint(port, isolated_aws_env(tmp_path))
    line = assert_one_line_error(result, 1)
    assert "not trusted" in line and "--ca-file" in line
    assert result.stdout == ""


def test_nothing_listening_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
        # bound but not listening: connections are refused
        result = thumbprint(port, isolated_aws_env(tmp_path), "--timeout", "5")
    assert f"cannot connect to 127.0.0.1:{port}" in assert_one_line_error(result, 1)


def test_create_provider_without_thumbprint_takes_it_from_the_handshake(tmp_path: Path) -> None:
    chain = make_chain()
    with moto_server() as moto, tls_host([chain.leaf, chain.intermediate], tmp_path) as port:
        issuer = f"https://127.0.0.1:{port}/cluster-1"
        result = run_cli(
            "aws", "create-provider", "--issuer", issuer, "--ca-file", write_root(chain, tmp_path),
            env=moto_env(moto, tmp_path),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        provider = moto.client("iam").get_open_id_connect_provider(
            OpenIDConnectProviderArn=result.stdout.strip()
        )
    assert provider["ThumbprintList"] == [openssl_sha1(chain.intermediate, tmp_path)]
