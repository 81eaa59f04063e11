"""Restart MicroK8s so kube-apiserver rereads its arguments, and wait until it answers again."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from webhook.errors import CheckFailed, UsageError

RESTART_HINT = "microk8s stop && microk8s start   (or: sudo snap restart microk8s)"
_READY_POLL_SECONDS = 2.0


@dataclass(frozen=True)
class RestartTools:
    microk8s: str
    snap: str | None

    @classmethod
    def find(cls) -> RestartTools:
        """Look the commands up before anything changes, so --restart cannot fail half-way."""
        microk8s = shutil.which("microk8s") or shutil.which("/snap/bin/microk8s")
        if microk8s is None:
            raise UsageError("--restart needs the microk8s command, and it is not on PATH")
        return cls(microk8s, shutil.which("snap"))


def _run(command: Sequence[str], timeout: float, say: Callable[[str], None]) -> bool:
    say("$ " + " ".join(command))
    try:
        result = subprocess.run(list(command), timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        say(f"  gave up after {timeout:.0f}s")
        return False
    return result.returncode == 0


def restart_and_wait(tools: RestartTools, timeout: float, say: Callable[[str], None]) -> None:
    """`microk8s stop` + `microk8s start` (else `snap restart microk8s`), then wait for /readyz."""
    deadline = time.monotonic() + timeout
    restarted = _run([tools.microk8s, "stop"], timeout, say) and _run(
        [tools.microk8s, "start"], timeout, say
    )
    if not restarted and tools.snap:
        restarted = _run([tools.snap, "restart", "microk8s"], timeout, say)
    if not restarted:
        raise CheckFailed(f"MicroK8s did not restart; the file is changed, run: {RESTART_HINT}")
    remaining = max(1.0, deadline - time.monotonic())
    _run(
        [tools.microk8s, "status", "--wait-ready", "--timeout", str(int(remaining))],
        remaining + 30,
        say,
    )
    attempts = max(1, int(timeout / _READY_POLL_SECONDS))
    for attempt in range(attempts):
        if _api_server_ready(tools.microk8s):
            say("kube-apiserver is ready")
            return
        if time.monotonic() >= deadline or attempt == attempts - 1:
            break
        time.sleep(_READY_POLL_SECONDS)  # waiting on a real service, not synchronising a test
    raise CheckFailed(
        f"kube-apiserver did not answer /readyz within {timeout:.0f}s after the restart: "
        "check `microk8s inspect` and `journalctl -u snap.microk8s.daemon-kubelite`"
    )


def restart_or_hint(tools: RestartTools | None, timeout: float, say: Callable[[str], None]) -> None:
    """Restart when asked (tools found beforehand), else say what to run."""
    if tools is None:
        say(f"restart MicroK8s to apply: {RESTART_HINT}")
    else:
        restart_and_wait(tools, timeout, say)


def _api_server_ready(microk8s: str) -> bool:
    try:
        result = subprocess.run(
            [microk8s, "kubectl", "get", "--raw", "/readyz"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0 and result.stdout.strip() == "ok"
