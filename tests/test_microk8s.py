"""`irsa-webhook microk8s configure|restore` on a copy of MicroK8s's real kube-apiserver args file.

Every result is read twice: with our parser, and with bash doing what MicroK8s's wrapper scripts
do (`declare -a args="($(cat FILE))"`: the shell strips quotes and comments and expands
${SNAP_DATA}). The keys the flags point at are loaded back from the expanded paths.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import SHARED_TESTDATA, run_cli

from webhook.apiserver.argsfile import ArgsFile
from webhook.apiserver.microk8s import ADDED_MARKER, DISABLED_MARKER
from webhook.oidc.keys import (
    generate_private_key,
    key_id,
    load_private_key,
    load_public_key,
    private_key_pem,
    public_key_pem,
    write_private_file,
)

REAL_ARGS = SHARED_TESTDATA / "microk8s" / "kube-apiserver"
ISSUER = "https://oidc.example.com/cluster-1"
MICROK8S_ISSUER = "https://kubernetes.default.svc"
MANAGED = (
    "service-account-issuer",
    "service-account-key-file",
    "service-account-signing-key-file",
    "api-audiences",
)


@dataclass(frozen=True)
class KeyFiles:
    public: Path
    private: Path

    @property
    def kid(self) -> str:
        return key_id(load_public_key(self.public))


def make_keys(folder: Path) -> KeyFiles:
    folder.mkdir(parents=True, exist_ok=True)
    key = generate_private_key()
    write_private_file(folder / "private_key.pem", private_key_pem(key))
    (folder / "public.pem").write_bytes(public_key_pem(key.public_key()))
    return KeyFiles(folder / "public.pem", folder / "private_key.pem")


@dataclass(frozen=True)
class Snap:
    """A MicroK8s data folder holding a copy of the real args file, writable as on a host."""

    data: Path

    @property
    def args_file(self) -> Path:
        return self.data / "args" / "kube-apiserver"

    @property
    def key_dir(self) -> Path:
        return self.data / "certs" / "irsa"

    @property
    def microk8s_kid(self) -> str:
        return key_id(load_public_key(self.data / "certs" / "serviceaccount.key"))

    def backups(self) -> list[Path]:
        return sorted(self.args_file.parent.glob("kube-apiserver.irsa-webhook-backup-*"))

    def configure(self, keys: KeyFiles, *extra: str) -> subprocess.CompletedProcess[str]:
        return run_cli(
            "microk8s",
            "configure",
            "--issuer",
            ISSUER,
            "--public-key",
            str(keys.public),
            "--signing-key",
            str(keys.private),
            "--snap-data",
            str(self.data),
            *extra,
        )


def make_snap(tmp_path: Path) -> Snap:
    data = tmp_path / "snap"
    (data / "args").mkdir(parents=True)
    (data / "certs").mkdir()
    # MicroK8s's own service-account key: it signs today and must keep verifying afterwards.
    write_private_file(
        data / "certs" / "serviceaccount.key", private_key_pem(generate_private_key())
    )
    shutil.copyfile(REAL_ARGS, data / "args" / "kube-apiserver")
    os.chmod(data / "args" / "kube-apiserver", 0o660)  # the shared copy is read-only
    return Snap(data)


@pytest.fixture
def snap(tmp_path: Path) -> Snap:
    return make_snap(tmp_path)


@pytest.fixture
def keys(tmp_path: Path) -> KeyFiles:
    return make_keys(tmp_path / "keys")


def bash_words(path: Path, snap_data: Path) -> list[str]:
    """The arguments as MicroK8s's wrapper shell would build them from the file."""
    result = subprocess.run(
        ["bash", "-c", 'declare -a args="($(cat "$1"))"; printf "%s\\n" "${args[@]}"', "_", path],
        capture_output=True,
        text=True,
        timeout=30,
        env={"SNAP_DATA": str(snap_data), "PATH": os.environ["PATH"]},
        check=True,
    )
    return result.stdout.splitlines()


def values(words: list[str], name: str) -> list[str]:
    return [w.split("=", 1)[1] for w in words if w.startswith(f"--{name}=")]


def unmanaged(words: list[str]) -> list[str]:
    return [w for w in words if not w.startswith(tuple(f"--{name}=" for name in MANAGED))]


def read_flags(snap: Snap) -> list[str]:
    """The active arguments, asserted equal from bash and from our parser."""
    words = bash_words(snap.args_file, snap.data)
    ours = ArgsFile(snap.args_file.read_text()).active_words({"SNAP_DATA": str(snap.data)})
    assert ours == words
    return words


def assert_only_managed_lines_changed(original: str, new: str) -> None:
    """Original lines all still there in order, verbatim or (our flags only) commented out;
    every line in between is our marker or one of our flags."""
    new_lines = new.splitlines(keepends=True)
    position = 0

    def is_ours(line: str) -> bool:
        return line.rstrip("\n") == ADDED_MARKER or line.startswith(
            tuple(f"--{name}=" for name in MANAGED)
        )

    for line in original.splitlines(keepends=True):
        while new_lines[position] not in (line, DISABLED_MARKER + line):
            assert is_ours(new_lines[position]), new_lines[position]
            position += 1
        if new_lines[position] != line:
            assert line.startswith(tuple(f"--{name}=" for name in MANAGED)), line
        position += 1
    assert all(is_ours(line) for line in new_lines[position:])


def assert_keys_installed(snap: Snap, words: list[str], keys: KeyFiles) -> None:
    (signing,) = values(words, "service-account-signing-key-file")
    assert key_id(load_private_key(signing)) == keys.kid
    assert stat.S_IMODE(os.stat(signing).st_mode) == 0o600
    assert any(
        key_id(load_public_key(path)) == keys.kid
        for path in values(words, "service-account-key-file")
    )


def test_first_configure_adds_the_issuer_and_keeps_old_tokens_valid(
    snap: Snap, keys: KeyFiles
) -> None:
    original = snap.args_file.read_text()
    before = read_flags(snap)

    result = snap.configure(keys)

    assert result.returncode == 0, result.stderr
    assert (
        f"+--service-account-issuer='{ISSUER}'" in result.stdout
    )  # the diff, in the file's quoting
    words = read_flags(snap)
    data = str(snap.data)
    assert values(words, "service-account-issuer") == [ISSUER, MICROK8S_ISSUER]
    assert values(words, "service-account-key-file") == [
        f"{data}/certs/serviceaccount.key",
        f"{data}/certs/irsa/sa-signer-{keys.kid[:16]}.pub",
    ]
    assert values(words, "service-account-signing-key-file") == [
        f"{data}/certs/irsa/sa-signer-{keys.kid[:16]}.key"
    ]
    assert values(words, "api-audiences") == [MICROK8S_ISSUER]
    assert unmanaged(words) == unmanaged(before)
    new = snap.args_file.read_text()
    assert_only_managed_lines_changed(original, new)
    assert "--service-account-signing-key-file=${SNAP_DATA}/certs/irsa/" in new
    assert_keys_installed(snap, words, keys)
    (backup,) = snap.backups()
    assert backup.read_text() == original
    assert stat.S_IMODE(snap.args_file.stat().st_mode) == 0o660


def test_second_configure_changes_nothing(snap: Snap, keys: KeyFiles) -> None:
    assert snap.configure(keys).returncode == 0
    after_first = snap.args_file.read_bytes()

    result = snap.configure(keys)

    assert result.returncode == 0, result.stderr
    assert "nothing to do" in result.stdout
    assert snap.args_file.read_bytes() == after_first
    assert len(snap.backups()) == 1


def test_dry_run_prints_the_diff_and_changes_nothing(snap: Snap, keys: KeyFiles) -> None:
    original = snap.args_file.read_bytes()

    result = snap.configure(keys, "--dry-run")

    assert result.returncode == 0, result.stderr
    assert "+--service-account-issuer=" in result.stdout
    assert "-" + "--service-account-signing-key-file=" in result.stdout
    assert snap.args_file.read_bytes() == original
    assert snap.backups() == []
    assert not snap.key_dir.exists()


def test_drop_previous_comments_out_the_previous_issuer_and_keys(
    snap: Snap, keys: KeyFiles
) -> None:
    original = snap.args_file.read_text()
    before = read_flags(snap)

    result = snap.configure(keys, "--drop-previous")

    assert result.returncode == 0, result.stderr
    words = read_flags(snap)
    assert values(words, "service-account-issuer") == [ISSUER]
    assert values(words, "service-account-key-file") == [
        f"{snap.data}/certs/irsa/sa-signer-{keys.kid[:16]}.pub"
    ]
    assert len(values(words, "service-account-signing-key-file")) == 1
    assert values(words, "api-audiences") == [MICROK8S_ISSUER]  # in-cluster clients keep working
    assert unmanaged(words) == unmanaged(before)
    new = snap.args_file.read_text()
    assert_only_managed_lines_changed(original, new)
    assert f"{DISABLED_MARKER}--service-account-issuer='{MICROK8S_ISSUER}'\n" in new
    assert_keys_installed(snap, words, keys)


def test_api_audiences_are_added_to_those_in_force(snap: Snap, keys: KeyFiles) -> None:
    result = snap.configure(keys, "--api-audiences", "https://extra.example,vault")

    assert result.returncode == 0, result.stderr
    words = read_flags(snap)
    assert values(words, "api-audiences") == [f"{MICROK8S_ISSUER},https://extra.example,vault"]


def test_rotation_keeps_the_key_it_replaces_and_lists_each_key_once(
    snap: Snap, keys: KeyFiles, tmp_path: Path
) -> None:
    assert snap.configure(keys).returncode == 0
    newer = make_keys(tmp_path / "newer")

    result = snap.configure(newer)

    assert result.returncode == 0, result.stderr
    words = read_flags(snap)
    assert values(words, "service-account-issuer") == [ISSUER, MICROK8S_ISSUER]
    key_files = values(words, "service-account-key-file")
    assert [key_id(load_public_key(path)) for path in key_files] == [
        snap.microk8s_kid,
        keys.kid,
        newer.kid,
    ]
    assert_keys_installed(snap, words, newer)
    assert len(snap.backups()) == 2


def test_restore_puts_back_the_newest_backup(snap: Snap, keys: KeyFiles, tmp_path: Path) -> None:
    original = snap.args_file.read_bytes()
    assert snap.configure(keys).returncode == 0
    after_first = snap.args_file.read_bytes()
    assert snap.configure(make_keys(tmp_path / "newer")).returncode == 0
    newest = snap.backups()[-1]

    result = run_cli("microk8s", "restore", "--snap-data", str(snap.data))

    assert result.returncode == 0, result.stderr
    assert str(newest) in result.stdout  # it says which backup it used
    assert snap.args_file.read_bytes() == after_first == newest.read_bytes()
    assert stat.S_IMODE(snap.args_file.stat().st_mode) == 0o660
    again = run_cli("microk8s", "restore", "--snap-data", str(snap.data))
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert snap.backups()[0].read_bytes() == original


def test_restore_without_a_backup_is_one_line_and_exit_2(snap: Snap) -> None:
    original = snap.args_file.read_bytes()

    result = run_cli("microk8s", "restore", "--args-file", str(snap.args_file))

    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "no backup" in result.stderr
    assert snap.args_file.read_bytes() == original


def assert_refused_and_untouched(
    result: subprocess.CompletedProcess[str], snap: Snap, original: bytes, *words: str
) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr
    assert snap.args_file.read_bytes() == original
    assert snap.backups() == []
    assert not snap.key_dir.exists()


def test_bad_key_is_refused_and_nothing_changes(snap: Snap, keys: KeyFiles) -> None:
    original = snap.args_file.read_bytes()
    keys.public.write_text("-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n")

    result = snap.configure(keys)

    assert_refused_and_untouched(result, snap, original, str(keys.public))


def test_mismatched_key_pair_is_refused_and_nothing_changes(
    snap: Snap, keys: KeyFiles, tmp_path: Path
) -> None:
    original = snap.args_file.read_bytes()
    other = make_keys(tmp_path / "other")

    result = snap.configure(KeyFiles(other.public, keys.private))

    assert_refused_and_untouched(result, snap, original, "not the public half")


def test_invalid_issuer_is_refused_and_nothing_changes(snap: Snap, keys: KeyFiles) -> None:
    original = snap.args_file.read_bytes()

    result = run_cli(
        "microk8s", "configure", "--issuer", "http://oidc.example.com/", "--public-key",
        str(keys.public), "--signing-key", str(keys.private), "--snap-data", str(snap.data),
    )  # fmt: skip

    assert_refused_and_untouched(result, snap, original, "https://")


def test_missing_args_file_is_refused(snap: Snap, keys: KeyFiles) -> None:
    snap.args_file.unlink()

    result = snap.configure(keys)

    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "does not exist" in result.stderr
    assert not snap.key_dir.exists()
    assert not snap.args_file.exists()


def test_read_only_file_is_refused_and_nothing_changes(snap: Snap, keys: KeyFiles) -> None:
    os.chmod(snap.args_file, 0o444)  # refused by mode even for root: read-only on purpose
    original = snap.args_file.read_bytes()

    result = snap.configure(keys)

    assert_refused_and_untouched(result, snap, original, "read-only")
    assert stat.S_IMODE(snap.args_file.stat().st_mode) == 0o444


def _can_unshare_mounts() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, timeout=30)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_unshare_mounts(), reason="needs a private mount namespace (root)")
def test_file_on_a_read_only_file_system_is_refused(snap: Snap, keys: KeyFiles) -> None:
    """A real read-only bind mount, inside a private mount namespace that dies with the command."""
    original = snap.args_file.read_bytes()
    args_dir = snap.args_file.parent
    script = 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" && shift && exec "$@"'
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c", script, "_", str(args_dir), sys.executable, "-m",
         "webhook", "microk8s", "configure", "--issuer", ISSUER, "--public-key",
         str(keys.public), "--signing-key", str(keys.private), "--snap-data", str(snap.data)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert_refused_and_untouched(result, snap, original, "not writable")
