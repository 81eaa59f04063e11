"""`irsa-webhook certs`: what the self-signed install and its renewals rely on."""

from __future__ import annotations

import base64
import stat
import subprocess
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from webhook.certificates import create_ca
from webhook.cli import main

SERVICE_NAMES = (
    "irsa-webhook",
    "irsa-webhook.irsa-webhook",
    "irsa-webhook.irsa-webhook.svc",
    "irsa-webhook.irsa-webhook.svc.cluster.local",
)
FILES = ("ca.crt", "ca.key", "tls.crt", "tls.key")


def run_certs(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["certs", *args])
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(directory: Path) -> dict[str, bytes]:
    return {name: (directory / name).read_bytes() for name in FILES}


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def verify_for(directory: Path, name: str) -> None:
    """What the API server does before calling the webhook: chain to the caBundle, name in SANs."""
    verifier = (
        PolicyBuilder()
        .store(Store([load_cert(directory / "ca.crt")]))
        .build_server_verifier(x509.DNSName(name))
    )
    verifier.verify(load_cert(directory / "tls.crt"), [])


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "certs"


def test_first_run_writes_ca_and_serving_cert_and_prints_the_ca_bundle(
    out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, stdout, _ = run_certs(capsys, "--out", str(out))
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    assert stdout.strip() == base64.b64encode((out / "ca.crt").read_bytes()).decode()
    for key in ("ca.key", "tls.key"):
        assert stat.S_IMODE((out / key).stat().st_mode) == 0o600, key
    # The key never reaches the terminal.
    assert "PRIVATE KEY" not in stdout


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_serving_cert_verifies_against_the_ca_for_each_service_name(
    out: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    assert run_certs(capsys, "--out", str(out))[0] == 0
    verify_for(out, name)


def test_openssl_agrees_and_other_names_are_rejected(
    out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_certs(capsys, "--out", str(out))[0] == 0
    for name, expected in (
        ("irsa-webhook.irsa-webhook.svc", 0),
        ("other.irsa-webhook.svc", 2),
    ):
        command = ["openssl", "verify", "-CAfile", out / "ca.crt", "-purpose", "sslserver"]
        result = subprocess.run(
            [*command, "-verify_hostname", name, out / "tls.crt"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == expected, (name, result.stdout, result.stderr)
    with pytest.raises(VerificationError):
        verify_for(out, "kubernetes.default.svc")


def test_service_and_namespace_flags_name_the_certificate(
    out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_certs(capsys, "--out", str(out), "--service", "pods", "--namespace", "iam")[0] == 0
    for name in ("pods", "pods.iam", "pods.iam.svc", "pods.iam.svc.cluster.local"):
        verify_for(out, name)
    with pytest.raises(VerificationError):
        verify_for(out, "irsa-webhook.irsa-webhook.svc")


def test_refuses_to_overwrite_without_force_and_changes_nothing(
    out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_certs(capsys, "--out", str(out))[0] == 0
    before = snapshot(out)
    code, stdout, stderr = run_certs(capsys, "--out", str(out))
    assert code == 2
    assert stdout == ""
    assert len(stderr.strip().splitlines()) == 1
    assert "already exists" in stderr and "--force" in stderr
    assert snapshot(out) == before


def test_refuses_when_only_a_serving_key_is_left_over(
    out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out.mkdir()
    (out / "tls.key").write_bytes(b"kept")
    assert run_certs(capsys, "--out", str(out))[0] == 2
    assert sorted(p.name for p in out.iterdir()) == ["tls.key"]
    assert (out / "tls.key").read_bytes() == b"kept"


def test_force_renews_the_serving_cert_and_keeps_the_ca(
    out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, first_bundle, _ = run_certs(capsys, "--out", str(out))
    before = snapshot(out)
    code, bundle, stderr = run_certs(capsys, "--out", str(out), "--force", "--days", "30")
    assert code == 0
    after = snapshot(out)
    assert after["ca.crt"] == before["ca.crt"] and after["ca.key"] == before["ca.key"]
    assert bundle == first_bundle
    assert after["tls.crt"] != before["tls.crt"] and after["tls.key"] != before["tls.key"]
    assert stat.S_IMODE((out / "tls.key").stat().st_mode) == 0o600
    renewed = load_cert(out / "tls.crt")
    lifetime = renewed.not_valid_after_utc - renewed.not_valid_before_utc
    assert 29 < lifetime.days <= 30
    verify_for(out, SERVICE_NAMES[-1])
    assert "kept CA" in stderr


def test_force_refuses_a_ca_key_that_does_not_match(
    out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_certs(capsys, "--out", str(out))[0] == 0
    other = create_ca()
    other.write(out / "spare.crt", out / "spare.key")
    (out / "ca.key").write_bytes((out / "spare.key").read_bytes())
    before = snapshot(out)
    code, _, stderr = run_certs(capsys, "--out", str(out), "--force")
    assert code == 2
    assert "ca.key" in stderr
    assert snapshot(out) == before


def test_force_refuses_a_ca_that_expires_before_the_new_cert(
    out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out.mkdir()
    create_ca(days=10).write(out / "ca.crt", out / "ca.key")
    code, _, stderr = run_certs(capsys, "--out", str(out), "--force", "--days", "365")
    assert code == 2
    assert "expires" in stderr
    assert not (out / "tls.crt").exists()
    assert run_certs(capsys, "--out", str(out), "--force", "--days", "5")[0] == 0


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--service", "Irsa_Webhook"], "--service"),
        (["--namespace", "a" * 64], "--namespace"),
        (["--days", "0"], "--days"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    out: Path, capsys: pytest.CaptureFixture[str], args: list[str], named: str
) -> None:
    code, _, stderr = run_certs(capsys, "--out", str(out), *args)
    assert code == 2
    assert named in stderr and len(stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_generated_files_are_git_ignored_and_the_kustomization_is_not() -> None:
    """A fresh clone has certs/README.md and certs/kustomization.yaml; keys never get committed."""

    def ignored(path: str) -> bool:
        result = subprocess.run(
            ["git", "check-ignore", "--quiet", "--no-index", path],
            cwd=REPO_ROOT,
            capture_output=True,
            timeout=30,
        )
        assert result.returncode in (0, 1), result.stderr
        return result.returncode == 0

    for name in (*FILES, "dev/ca.key"):
        assert ignored(f"certs/{name}"), name
    for name in ("README.md", "kustomization.yaml"):
        assert not ignored(f"certs/{name}"), name
