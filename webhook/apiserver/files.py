"""Safe edges for editing a system file: checks first, backups beside it, atomic replace."""

from __future__ import annotations

import os
import stat
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from webhook.errors import UsageError

BACKUP_INFIX = ".irsa-webhook-backup-"
BEFORE_RESTORE_INFIX = ".irsa-webhook-before-restore-"


def read_text(path: Path) -> str:
    try:
        if not path.is_file():
            if path.exists():
                raise UsageError(f"{path} is not a regular file")
            raise UsageError(f"{path} does not exist: is MicroK8s installed? (see --args-file)")
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


def check_writable(path: Path) -> None:
    """Refuse before anything changes when the file, or the folder holding it, cannot be written.

    A file with no write bit at all is refused even for root: someone made it read-only on
    purpose, and replacing it by rename would quietly get around that.
    """
    mode = path.stat().st_mode
    if not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        raise UsageError(
            f"{path} is read-only (mode {stat.S_IMODE(mode):04o}): make it writable to change it"
        )
    if not os.access(path, os.W_OK):
        raise UsageError(
            f"{path} is not writable here (run with sudo, or it is on a read-only file system)"
        )
    folder = path.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(
            f"cannot write in {folder}: the backup and the atomic replace are made there"
        )


def check_creatable_dir(folder: Path) -> None:
    """The folder exists and is writable, or its nearest existing parent lets us create it."""
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"{probe} is not a folder: cannot put keys in {folder}")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write in {probe}: it would hold the key copies for {folder}")


def write_atomically(path: Path, text: str) -> None:
    """Replace the file by rename from a sibling temp file with the same mode and owner.

    A symlink is followed, so the file it names is replaced and the link stays a link.
    """
    path = path.resolve()
    info = path.stat()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, stat.S_IMODE(info.st_mode))
        if os.geteuid() == 0:
            os.chown(tmp, info.st_uid, info.st_gid)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def backup(path: Path, infix: str = BACKUP_INFIX) -> Path:
    """Copy the file beside itself under a UTC timestamp (sortable, so the newest is last)."""
    target = path.with_name(f"{path.name}{infix}{_stamp()}")
    data = path.read_bytes()
    mode = stat.S_IMODE(path.stat().st_mode)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(target, mode)
    return target


def backups_of(path: Path) -> list[Path]:
    """Backups made by configure, oldest first."""
    return sorted(path.parent.glob(f"{path.name}{BACKUP_INFIX}*"))


def restore_newest(path: Path) -> tuple[Path, Path | None]:
    """Put the newest backup back; the current file is saved first (not as a restore candidate)."""
    candidates = backups_of(path)
    if not candidates:
        raise UsageError(f"no backup of {path} to restore (looked for {path.name}{BACKUP_INFIX}*)")
    newest = candidates[-1]
    text = read_text(newest)
    saved: Path | None = None
    if path.exists():
        check_writable(path)
        if path.read_bytes() == newest.read_bytes():
            return newest, None
        saved = backup(path, BEFORE_RESTORE_INFIX)
        write_atomically(path, text)
    else:
        check_creatable_dir(path.parent)
        path.write_bytes(newest.read_bytes())
        os.chmod(path, stat.S_IMODE(newest.stat().st_mode))
    return newest, saved
