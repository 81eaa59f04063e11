"""`--restart`, against stand-in `microk8s` and `snap` executables that record how they are called.

The stand-ins replace system binaries (there is no MicroK8s here); our own code runs unchanged.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_microk8s import ISSUER, KeyFiles, Snap, make_keys, make_snap

FAKE = """#!/bin/sh
echo "{name} $*" >> "{log}"
case "$*" in
  stop) exit {stop_rc} ;;
  "kubectl get --raw /readyz") echo "{readyz}" ;;
esac
exit 0
"""


def fake_tools(folder: Path, *, stop_rc: int = 0, readyz: str = "ok") -> Path:
    """A PATH folder with `microk8s` and `snap` stand-ins; returns the call log."""
    folder.mkdir()
    log = folder / "calls.log"
    for name in ("microk8s", "snap"):
        script = folder / name
        script.write_text(FAKE.format(name=name, log=log, stop_rc=stop_rc, readyz=readyz))
        script.chmod(0o755)
    return log


@pytest.fixture
def host(tmp_path: Path) -> tuple[Snap, KeyFiles]:
    """A MicroK8s data folder with the real args file, and a key pair to configure."""
    return make_snap(tmp_path), make_keys(tmp_path / "keys")


def configure_with_path(
    host: tuple[Snap, KeyFiles], path: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    snap, keys = host
    return subprocess.run(
        [sys.executable, "-m", "webhook", "microk8s", "configure", "--issuer", ISSUER,
         "--public-key", str(keys.public), "--signing-key", str(keys.private),
         "--snap-data", str(snap.data), "--restart", *extra],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PATH": str(path)},
    )  # fmt: skip


def calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_restart_stops_starts_and_waits_for_readyz(
    host: tuple[Snap, KeyFiles], tmp_path: Path
) -> None:
    snap = host[0]
    log = fake_tools(tmp_path / "bin")

    result = configure_with_path(host, tmp_path / "bin", "--wait-timeout", "60")

    assert result.returncode == 0, result.stderr
    recorded = calls(log)
    assert recorded[:2] == ["microk8s stop", "microk8s start"]
    assert recorded[2].startswith("microk8s status --wait-ready --timeout ")
    assert recorded[3:] == ["microk8s kubectl get --raw /readyz"]
    assert "kube-apiserver is ready" in result.stdout
    assert len(snap.backups()) == 1  # the file was written before the restart


def test_restart_falls_back_to_snap_restart(host: tuple[Snap, KeyFiles], tmp_path: Path) -> None:
    log = fake_tools(tmp_path / "bin", stop_rc=1)

    result = configure_with_path(host, tmp_path / "bin")

    assert result.returncode == 0, result.stderr
    assert calls(log)[:2] == ["microk8s stop", "snap restart microk8s"]


def test_api_server_that_never_gets_ready_is_exit_1(
    host: tuple[Snap, KeyFiles], tmp_path: Path
) -> None:
    fake_tools(tmp_path / "bin", readyz="[-]etcd failed")

    result = configure_with_path(host, tmp_path / "bin", "--wait-timeout", "1")

    assert result.returncode == 1
    assert "did not answer /readyz" in result.stderr


def test_restart_without_microk8s_is_refused_before_anything_changes(
    host: tuple[Snap, KeyFiles], tmp_path: Path
) -> None:
    snap = host[0]
    original = snap.args_file.read_bytes()
    (tmp_path / "empty").mkdir()

    result = configure_with_path(host, tmp_path / "empty")

    assert result.returncode == 2
    assert "microk8s command" in result.stderr
    assert snap.args_file.read_bytes() == original
    assert not snap.key_dir.exists()


def test_second_run_does_not_restart_again(host: tuple[Snap, KeyFiles], tmp_path: Path) -> None:
    log = fake_tools(tmp_path / "bin")
    assert configure_with_path(host, tmp_path / "bin").returncode == 0
    first = calls(log)

    again = configure_with_path(host, tmp_path / "bin")

    assert again.returncode == 0
    assert "nothing to do" in again.stdout
    assert calls(log) == first
