"""`serve` wired to the Kubernetes API: the server built from its flags, a real kubeconfig, the
real kubernetes-asyncio client and our fake API server, all over TLS on loopback."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import LocalTLS
from fakeapi import FakeKubeAPI
from test_server import pod, review

from webhook.cli import build_parser
from webhook.server.assembly import build_server
from webhook.server.runner import WebhookServer

ROLE = "arn:aws:iam::111122223333:role/fresh"
WAIT = 20.0


async def eventually(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not await condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {WAIT}s waiting until {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
async def served(
    fake_api: FakeKubeAPI, local_tls: LocalTLS, tmp_path: Path
) -> AsyncIterator[WebhookServer]:
    """The server as `serve --kubeconfig ...` builds it, with the API failing at first."""
    fake_api.create("default", "existing", {"eks.amazonaws.com/role-arn": ROLE})
    fake_api.fail_next = 10**6
    kubeconfig = fake_api.write_kubeconfig(tmp_path / "kubeconfig", local_tls.ca_file)
    args = build_parser().parse_args(
        [
            "serve",
            "--kubeconfig", str(kubeconfig),
            "--tls-cert", str(local_tls.cert_file),
            "--tls-key", str(local_tls.key_file),
            "--bind-address", "127.0.0.1",
            "--port", "0",
            "--metrics-port", "0",
            "--lookup-timeout", "0.5",
        ]
    )  # fmt: skip
    server = await build_server(args)
    await server.start()
    yield server
    await asyncio.wait_for(server.stop(), WAIT)


async def test_serve_with_the_api_ready_after_first_list_and_no_race(
    served: WebhookServer, fake_api: FakeKubeAPI, local_tls: LocalTLS
) -> None:
    connector = aiohttp.TCPConnector(ssl=local_tls.client_context())
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=WAIT)
    ) as session:
        base = f"https://127.0.0.1:{served.port}"
        metrics = f"http://127.0.0.1:{served.metrics_port}"

        async def status(url: str) -> int:
            async with session.get(url) as resp:
                return resp.status

        async def admit(uid: str, namespace: str, name: str) -> dict[str, Any]:
            async with session.post(
                f"{base}/mutate", json=review(pod(name), uid=uid, namespace=namespace)
            ) as resp:
                assert resp.status == 200
                answer: dict[str, Any] = (await resp.json())["response"]
                return answer

        # The API answers 500: not ready, yet pods are answered (allowed, not mutated).
        assert await status(f"{base}/readyz") == 503
        assert await status(f"{metrics}/readyz") == 503
        assert await status(f"{base}/healthz") == 200
        answer = await admit("while-down", "default", "existing")
        assert answer["allowed"] is True
        assert "patch" not in answer

        # The API recovers: ready once the first full list is in.
        fake_api.fail_next = 0

        async def ready() -> bool:
            return await status(f"{base}/readyz") == 200

        await eventually(ready, "/readyz says ready")
        assert await status(f"{metrics}/readyz") == 200

        # A ServiceAccount created a moment before its pod: the pod is mutated, every time.
        for n in range(50):
            fake_api.create(f"team-{n % 5}", f"fresh-{n}", {"eks.amazonaws.com/role-arn": ROLE})
            answer = await admit(f"fresh-{n}", f"team-{n % 5}", f"fresh-{n}")
            patch = json.loads(base64.b64decode(answer["patch"]))
            assert ROLE in json.dumps(patch), n

        async def scrape() -> dict[str, float]:
            async with session.get(f"{metrics}/metrics") as resp:
                text = await resp.text()
            return {
                line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line and not line.startswith("#")
            }

        async def holds_all() -> bool:
            return (await scrape())["irsa_webhook_serviceaccount_cache_size"] == 51

        await eventually(holds_all, "the cache holds every account (through the watch)")
        samples = await scrape()
        assert samples["irsa_webhook_serviceaccount_cache_ready"] == 1
        for counter in ("misses", "direct_lookups", "watch_restarts", "lookup_failures"):
            assert f"irsa_webhook_serviceaccount_cache_{counter}_total" in samples
        # The admission while the API was failing was a miss answered by a failed lookup.
        assert samples["irsa_webhook_serviceaccount_cache_lookup_failures_total"] >= 1
        assert samples['irsa_webhook_admissions_total{dry_run="false",outcome="mutated"}'] == 50
