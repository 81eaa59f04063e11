"""Fixtures shared by every test module."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from fakeapi import FakeKubeAPI
from kubernetes_asyncio import client, config

from webhook.certificates import KeyAndCert, create_ca, issue_serving_cert

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_TESTDATA = REPO_ROOT.parent / "shared" / "testdata"
CLI_TIMEOUT = 60


def run_cli(
    *args: str,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """`irsa-webhook ARGS` as a user runs it: a real process, bounded in time."""
    return subprocess.run(
        [sys.executable, "-m", "webhook", *args],
        capture_output=True,
        text=True,
        input=stdin,
        env=env,
        cwd=cwd,
        timeout=CLI_TIMEOUT,
    )


async def run_cli_async(*args: str, stdin: str = "", cwd: Path = REPO_ROOT) -> tuple[int, str, str]:
    """run_cli for tests whose event loop must keep serving while the command runs."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "webhook", *args,
        cwd=cwd,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(process.communicate(stdin.encode()), CLI_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@dataclass(frozen=True)
class LocalTLS:
    """A test CA and a loopback serving certificate, written to files like a real deployment's."""

    ca: KeyAndCert
    server: KeyAndCert
    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


@asynccontextmanager
async def served_over_tls(app: web.Application, tls: LocalTLS) -> AsyncIterator[int]:
    """Serve `app` on a free loopback port with the test certificate; yields the port."""
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls.server_context())
        await site.start()
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


@pytest.fixture
def local_tls(tmp_path: Path) -> LocalTLS:
    ca = create_ca("irsa-webhook test CA")
    server = issue_serving_cert(ca, ["localhost", "127.0.0.1"])
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(ca.cert_pem)
    server.write(tmp_path / "tls.crt", tmp_path / "tls.key")
    return LocalTLS(ca, server, ca_file, tmp_path / "tls.crt", tmp_path / "tls.key")


@pytest.fixture
async def fake_api(local_tls: LocalTLS) -> AsyncIterator[FakeKubeAPI]:
    """Our fake Kubernetes API (tests/fakeapi.py) over TLS with the local_tls certificate."""
    api = FakeKubeAPI(local_tls.server_context())
    await api.start()
    yield api
    await api.stop()


@pytest.fixture
async def kube_client(
    fake_api: FakeKubeAPI, local_tls: LocalTLS, tmp_path: Path
) -> AsyncIterator[client.ApiClient]:
    """The real kubernetes-asyncio client, configured from a kubeconfig file for fake_api."""
    kubeconfig = fake_api.write_kubeconfig(tmp_path / "kubeconfig", local_tls.ca_file)
    api_client = await config.new_client_from_config(config_file=str(kubeconfig))
    yield api_client
    await api_client.close()
