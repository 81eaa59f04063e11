"""Helpers for the AWS tests: moto's server on loopback, a clean AWS environment for the CLI,
and a TLS host on 127.0.0.1 that presents a chain the test made."""

from __future__ import annotations

import os
import socketserver
import ssl
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from moto.core.responses import ActionResult, EmptyResult
from moto.iam.responses import IamResponse
from moto.server import ThreadedMotoServer

from webhook.certificates import KeyAndCert, create_ca, issue_serving_cert

ACCOUNT = "123456789012"  # moto's default account
REGION = "eu-west-1"
CLI_TIMEOUT = 60


def _add_client_id_to_open_id_connect_provider(self: IamResponse) -> ActionResult:
    """moto 5.2 lacks this IAM action; this extension of the stand-in does what IAM documents:
    add the client ID to the provider's list unless it is there."""
    provider = self.backend.get_open_id_connect_provider(
        self._get_param("OpenIDConnectProviderArn")
    )
    client_id = self._get_param("ClientID")
    if client_id not in provider.client_id_list:
        provider.client_id_list.append(client_id)
    return EmptyResult()


@dataclass(frozen=True)
class Moto:
    endpoint: str

    def client(self, service: str) -> Any:
        """An in-process boto3 client with explicit fake credentials: nothing read from ~/.aws."""
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        )
        return session.client(service, endpoint_url=self.endpoint)

    def _post(self, path: str, body: bytes | None = None) -> None:
        request = urllib.request.Request(
            f"{self.endpoint}{path}",
            data=body,
            method="POST",
            headers={"Content-Type": "text/plain"},  # not a form: moto reads the raw body
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200

    def reset(self) -> None:
        self._post("/moto-api/reset")

    @contextmanager
    def enforcing_iam(self) -> Iterator[None]:
        """moto checks every request's credentials and IAM policies inside the block
        (its server-mode /moto-api/reset-auth switch), as AWS always does."""
        self._post("/moto-api/reset-auth", b"0")
        try:
            yield
        finally:
            self._post("/moto-api/reset-auth", b"inf")


@contextmanager
def moto_server() -> Iterator[Moto]:
    """moto in server mode on a free loopback port, stopped when the block ends."""
    had_action = hasattr(IamResponse, "add_client_id_to_open_id_connect_provider")
    if not had_action:
        IamResponse.add_client_id_to_open_id_connect_provider = (  # type: ignore[attr-defined]
            _add_client_id_to_open_id_connect_provider
        )
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield Moto(f"http://{host}:{port}")
    finally:
        server.stop()
        if not had_action:
            del IamResponse.add_client_id_to_open_id_connect_provider  # type: ignore[attr-defined]


def isolated_aws_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The caller's environment minus every AWS setting, with config files that do not exist
    and the instance metadata service off, so nothing from this machine (or beyond it) leaks in."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env.update(
        AWS_CONFIG_FILE=str(tmp_path / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    env.update(extra)
    return env


def moto_env(moto: Moto, tmp_path: Path) -> dict[str, str]:
    """What a user with static credentials and AWS_ENDPOINT_URL would have."""
    return isolated_aws_env(
        tmp_path,
        AWS_ENDPOINT_URL=moto.endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_REGION=REGION,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], exit_code: int) -> str:
    assert result.returncode == exit_code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# A TLS host with a chain of the test's making ------------------------------------------------


@dataclass(frozen=True)
class Chain:
    root: KeyAndCert
    intermediate: KeyAndCert
    leaf: KeyAndCert


def make_chain() -> Chain:
    root = create_ca("irsa-webhook test root")
    intermediate = issue_serving_cert(root, ["irsa-webhook test intermediate"], is_ca=True)
    leaf = issue_serving_cert(intermediate, ["localhost", "127.0.0.1"])
    return Chain(root, intermediate, leaf)


class _HandshakeOnly(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.settimeout(10)
        try:
            with self.server.context.wrap_socket(self.request, server_side=True) as tls:  # type: ignore[attr-defined]
                tls.recv(1)
        except (ssl.SSLError, OSError):
            pass  # the client may reject us or hang up after the handshake: both are fine


class _TLSServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = False


@contextmanager
def tls_host(certificates: list[KeyAndCert], tmp_path: Path) -> Iterator[int]:
    """A server on 127.0.0.1 presenting `certificates` (leaf first); yields its port."""
    chain_file, key_file = tmp_path / "chain.pem", tmp_path / "chain.key"
    certificates[0].write(chain_file, key_file)
    chain_file.write_bytes(b"".join(cert.cert_pem for cert in certificates))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(chain_file, key_file)
    server = _TLSServer(("127.0.0.1", 0), _HandshakeOnly)
    server.context = context  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
