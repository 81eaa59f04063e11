"""Initial sync of the ServiceAccount cache: time to ready and memory for 100,000 accounts.

The fake Kubernetes API (tests/fakeapi.py) runs in its own process over TLS with the accounts
loaded, so this process measures only the cache: the real kubernetes-asyncio client, configured
from the fake's kubeconfig, paging through the list with the cache's default page size.

Targets (issue 3): ready in at most 5 s, and at most 60 MB more resident memory than before the
cache started. RSS is read from /proc/self/status (VmRSS now, VmHWM for the peak).

    python bench/sync.py [--count 100000] [--page-size 500]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kubernetes_asyncio import config

from webhook.serviceaccounts.cache import ServiceAccountCache
from webhook.settings import DEFAULT_ANNOTATION_PREFIX

REPO_ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 5.0
TARGET_MB = 60.0
FAKE_START_TIMEOUT = 300.0
SYNC_TIMEOUT = 120.0


def memory_mb(field: str) -> float:
    """A Vm* line of /proc/self/status, in MB (10^6 bytes)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"{field} not in /proc/self/status")


def start_fake_api(directory: Path, count: int, annotate_every: int) -> subprocess.Popen[str]:
    fake = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "tests" / "fakeapi.py"), "--dir", str(directory),
         "--count", str(count), "--annotate-every", str(annotate_every),
         "--prefix", DEFAULT_ANNOTATION_PREFIX],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert fake.stdout is not None
    # "ready URL COUNT", printed once the accounts are loaded.
    readable, _, _ = select.select([fake.stdout], [], [], FAKE_START_TIMEOUT)
    line = fake.stdout.readline() if readable else ""
    if not line.startswith("ready "):
        fake.kill()
        raise SystemExit(f"the fake API did not start: {line!r}")
    return fake


async def measure(kubeconfig: Path, count: int, page_size: int) -> tuple[float, float, float, int]:
    api_client = await config.new_client_from_config(config_file=str(kubeconfig))
    try:
        cache = ServiceAccountCache(api_client, DEFAULT_ANNOTATION_PREFIX, page_size=page_size)
        gc.collect()
        rss_before = memory_mb("VmRSS")
        started = time.perf_counter()
        await cache.start()
        deadline = time.monotonic() + SYNC_TIMEOUT
        while not cache.is_ready():
            if time.monotonic() > deadline:
                raise SystemExit(f"not ready after {SYNC_TIMEOUT}s")
            await asyncio.sleep(0.005)
        seconds = time.perf_counter() - started
        grown = memory_mb("VmRSS") - rss_before
        peak = memory_mb("VmHWM") - rss_before
        held = len(cache)
        annotated = sum(1 for entry in cache._store.values() if entry.annotations)
        await cache.stop()
    finally:
        await api_client.close()
    if held != count:
        raise SystemExit(f"the cache holds {held} ServiceAccounts, expected {count}")
    return seconds, grown, peak, annotated


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=500)
    parser.add_argument("--annotate-every", type=int, default=10)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="irsa-bench-sync-") as tmp:
        fake = start_fake_api(Path(tmp), args.count, args.annotate_every)
        try:
            seconds, grown, peak, annotated = asyncio.run(
                measure(Path(tmp) / "kubeconfig", args.count, args.page_size)
            )
        finally:
            assert fake.stdin is not None
            fake.stdin.close()  # the fake exits when its stdin closes
            try:
                fake.wait(timeout=10)
            except subprocess.TimeoutExpired:
                fake.kill()

    time_ok = seconds <= TARGET_SECONDS
    memory_ok = grown <= TARGET_MB
    print(
        f"ServiceAccounts synced: {args.count} ({annotated} annotated), page size {args.page_size}"
    )
    print(f"time to ready: {seconds:.2f} s (target <= {TARGET_SECONDS:.0f} s): "
          f"{'PASS' if time_ok else 'FAIL'}")  # fmt: skip
    print(f"RSS growth: {grown:.1f} MB (target <= {TARGET_MB:.0f} MB): "
          f"{'PASS' if memory_ok else 'FAIL'}; peak growth {peak:.1f} MB")  # fmt: skip
    return 0 if time_ok and memory_ok else 1


if __name__ == "__main__":
    sys.exit(main())
