"""`irsa-webhook serve` as a process: flags and env, TLS options, SIGTERM, and the --dev server."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shlex
import signal
import socket
import ssl
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import REPO_ROOT
from test_server import pod, review

from webhook.cli import build_parser, main

ROLE_ARN = "arn:aws:iam::111122223333:role/s3-reader"
SERVICE_ACCOUNTS = f"""\
apiVersion: v1
kind: ServiceAccount
metadata:
  name: aws-cli
  namespace: default
  annotations:
    eks.amazonaws.com/role-arn: {ROLE_ARN}
"""
START_TIMEOUT = 30.0


def review_body(uid: str) -> bytes:
    return json.dumps(review(pod("aws-cli", f"pod-{uid}"), uid=uid)).encode()


@dataclass
class ServeProcess:
    proc: asyncio.subprocess.Process
    port: int
    metrics_port: int
    log_lines: list[dict[str, Any]]


async def start_serve(
    args: list[str], *, cwd: Path, env: dict[str, str] | None = None
) -> ServeProcess:
    """Start `python -m webhook serve` and wait for its "listening" log line (JSON format)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "webhook",
        "serve",
        *args,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    lines: list[dict[str, Any]] = []

    async def until_listening() -> dict[str, Any]:
        assert proc.stderr is not None
        while raw := await proc.stderr.readline():
            line = json.loads(raw)
            lines.append(line)
            if line["msg"] == "listening":
                return line
        raise AssertionError(f"serve exited before listening: {lines}")

    try:
        listening = await asyncio.wait_for(until_listening(), START_TIMEOUT)
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    return ServeProcess(
        proc,
        int(listening["webhook"].rsplit(":", 1)[1].split("/")[0]),
        int(listening["metrics"].rsplit(":", 1)[1].split("/")[0]),
        lines,
    )


@pytest.fixture
def serve_files(local_tls: Any, tmp_path: Path) -> Path:
    (tmp_path / "sas.yaml").write_text(SERVICE_ACCOUNTS)
    return tmp_path


@pytest.fixture
async def stopper() -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """Kills whatever a test started and did not stop itself (a failed assertion midway)."""
    procs: list[asyncio.subprocess.Process] = []
    yield procs
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def metric(port: int, name: str) -> float:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as resp,
    ):
        text = await resp.text()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


async def test_sigterm_finishes_requests_in_flight_and_exits_0(
    local_tls: Any, serve_files: Path, stopper: list[asyncio.subprocess.Process]
) -> None:
    # Configured through the environment, as a Deployment would (a flag still wins for --port).
    env = {
        "IRSA_WEBHOOK_TLS_CERT": str(local_tls.cert_file),
        "IRSA_WEBHOOK_TLS_KEY": str(local_tls.key_file),
        "IRSA_WEBHOOK_SERVICE_ACCOUNTS": str(serve_files / "sas.yaml"),
        "IRSA_WEBHOOK_BIND_ADDRESS": "127.0.0.1",
        "IRSA_WEBHOOK_METRICS_PORT": "0",
        "IRSA_WEBHOOK_PORT": "1",  # overridden below
        "IRSA_WEBHOOK_LOG_FORMAT": "json",
    }
    server = await start_serve(["--port", "0"], cwd=serve_files, env=env)
    stopper.append(server.proc)
    ctx = local_tls.client_context()

    # Requests in flight: headers and half of each body sent, the rest held back.
    bodies = [review_body(f"inflight-{i}") for i in range(5)]
    conns = []
    for body in bodies:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=ctx)
        writer.write(
            b"POST /mutate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[: len(body) // 2]
        )
        await writer.drain()
        conns.append((reader, writer))

    async def all_in_flight() -> None:
        while await metric(server.metrics_port, "irsa_webhook_requests_in_flight") < len(bodies):
            await asyncio.sleep(0.02)

    await asyncio.wait_for(all_in_flight(), 10)
    server.proc.send_signal(signal.SIGTERM)

    async def refusing_new_connections() -> None:
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=ctx)
            except (ConnectionRefusedError, ConnectionResetError, ssl.SSLError, OSError):
                return
            writer.close()
            await asyncio.sleep(0.02)

    await asyncio.wait_for(refusing_new_connections(), 10)

    for (_, writer), body in zip(conns, bodies, strict=True):
        writer.write(body[len(body) // 2 :])
        await writer.drain()
    for i, (reader, writer) in enumerate(conns):
        response = await asyncio.wait_for(reader.read(), 10)
        head, _, payload = response.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        answer = json.loads(payload)
        assert answer["response"]["uid"] == f"inflight-{i}"
        assert answer["response"]["patchType"] == "JSONPatch"
        writer.close()
    assert await asyncio.wait_for(server.proc.wait(), 15) == 0


def test_flag_on_the_command_line_beats_the_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IRSA_WEBHOOK_PORT", "9443")
    monkeypatch.setenv("IRSA_WEBHOOK_TOKEN_AUDIENCE", "my-audience")
    monkeypatch.setenv("IRSA_WEBHOOK_STS_REGIONAL_ENDPOINT", "true")
    monkeypatch.setenv("IRSA_WEBHOOK_DEV", "1")
    monkeypatch.setenv("IRSA_WEBHOOK_SERVICE_ACCOUNTS", "a.yaml,b.yaml")
    args = build_parser().parse_args(["serve"])
    assert (args.port, args.token_audience, args.sts_regional_endpoint, args.dev) == (
        9443,
        "my-audience",
        True,
        True,
    )
    assert [str(p) for p in args.service_accounts] == ["a.yaml", "b.yaml"]
    args = build_parser().parse_args(["serve", "--port", "10443", "--token-audience", "x"])
    assert (args.port, args.token_audience) == (10443, "x")


def run_cli(argv: list[str]) -> int:
    """main() as the console script runs it: argparse's own errors exit 2 as well.

    serve configures the root logger; it is put back so later tests log as pytest set up."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("IRSA_WEBHOOK_PORT", "https", "IRSA_WEBHOOK_PORT='https': expected a port number"),
        ("IRSA_WEBHOOK_LOG_FORMAT", "yaml", "IRSA_WEBHOOK_LOG_FORMAT='yaml': expected one of"),
        ("IRSA_WEBHOOK_DEV", "maybe", "IRSA_WEBHOOK_DEV='maybe': expected true or false"),
    ],
)
def test_bad_env_value_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    value: str,
    says: str,
) -> None:
    monkeypatch.setenv(name, value)
    assert run_cli(["serve"]) == 2
    err = capsys.readouterr().err
    assert says in err
    assert err.count("\n") == 1


def test_bad_env_value_does_not_matter_when_the_flag_is_given(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IRSA_WEBHOOK_PORT", "https")
    # It fails later, on the missing certificate: the port came from the flag.
    missing = str(tmp_path / "none.crt")
    assert run_cli(["serve", "--port", "0", "--tls-cert", missing]) == 2
    err = capsys.readouterr().err
    assert "IRSA_WEBHOOK_PORT" not in err
    assert f"cannot load TLS certificate {missing}" in err
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--tls-cipher-suites", "TLS_NOPE"], "unknown cipher suite 'TLS_NOPE'"),
        (["--tls-min-version", "1.0"], "invalid choice: '1.0'"),
        (["--lookup-timeout", "soon"], "expected seconds, got 'soon'"),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(
    local_tls: Any, args: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    tls = ["--tls-cert", str(local_tls.cert_file), "--tls-key", str(local_tls.key_file)]
    assert run_cli(["serve", *tls, *args]) == 2
    err = capsys.readouterr().err
    assert says in err
    assert err.count("\n") == 1


def test_reference_webhook_arguments_are_accepted() -> None:
    args = build_parser().parse_args(
        [
            "serve",
            "--in-cluster=false",
            "--namespace=default",
            "--service-name=pod-identity-webhook",
            "--annotation-prefix=eks.amazonaws.com",
            "--token-audience=sts.amazonaws.com",
            "--logtostderr",
            "-v=4",
            "--sts-regional-endpoint=true",
            "--service-account-lookup-grace-period=100ms",
            "--enable-debugging-handlers",
            "--tls-secret=pod-identity-webhook",
        ]
    )
    assert args.annotation_prefix == "eks.amazonaws.com"
    assert args.sts_regional_endpoint is True


async def test_dev_server_end_to_end_with_review_server(
    tmp_path: Path, stopper: list[asyncio.subprocess.Process]
) -> None:
    """The README's quick start, in a scratch copy of the files it needs (certs/dev lands there)."""
    for name in ("serviceaccounts.yaml", "pod.yaml"):
        (tmp_path / "examples").mkdir(exist_ok=True)
        (tmp_path / "examples" / name).write_bytes((REPO_ROOT / "examples" / name).read_bytes())
    server = await start_serve(
        ["--dev", "--port", "0", "--metrics-port", "0", "--log-format", "json"], cwd=tmp_path
    )
    stopper.append(server.proc)
    assert server.proc.stdout is not None
    printed = ""
    while "--output pod" not in printed:
        printed += (await asyncio.wait_for(server.proc.stdout.readline(), START_TIMEOUT)).decode()
    command = next(line.strip() for line in printed.splitlines() if "irsa-webhook review" in line)
    assert command == (
        f"irsa-webhook review examples/pod.yaml --server https://127.0.0.1:{server.port} "
        "--ca-file certs/dev/ca.crt --output pod"
    )
    assert (tmp_path / "certs/dev/tls.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "certs/dev/ca.key").stat().st_mode & 0o777 == 0o600

    review = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "webhook",
        *shlex.split(command)[1:],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(review.communicate(), 60)
    assert review.returncode == 0, err.decode()
    assert "name: AWS_ROLE_ARN" in out.decode()
    assert "arn:aws:iam::111122223333:role/aws-cli" in out.decode()

    # The server saw it as a dry run and logged one line for it.
    server.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(server.proc.wait(), 15) == 0
    assert server.proc.stderr is not None
    rest = (await server.proc.stderr.read()).decode().splitlines()
    admissions = [json.loads(line) for line in rest if '"admission"' in line]
    assert [(a["pod"], a["result"], a["dry_run"]) for a in admissions] == [
        ("aws-cli", "mutated", True)
    ]

    # A second start keeps the CA the user already points --ca-file at.
    ca_before = (tmp_path / "certs/dev/ca.crt").read_bytes()
    again = await start_serve(
        ["--dev", "--port", "0", "--metrics-port", "0", "--log-format", "json"], cwd=tmp_path
    )
    stopper.append(again.proc)
    again.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(again.proc.wait(), 15) == 0
    assert (tmp_path / "certs/dev/ca.crt").read_bytes() == ca_before


def test_no_api_and_no_files_is_one_line_and_exit_2(
    local_tls: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    tls = ["--tls-cert", str(local_tls.cert_file), "--tls-key", str(local_tls.key_file)]
    assert run_cli(["serve", *tls]) == 2
    err = capsys.readouterr().err
    assert "pass --kubeconfig" in err and "--service-accounts" in err
    assert err.count("\n") == 1
    (tmp_path / "bad-kubeconfig").write_text("not: [a kubeconfig")
    assert run_cli(["serve", *tls, "--kubeconfig", str(tmp_path / "bad-kubeconfig")]) == 2
    err = capsys.readouterr().err
    assert "cannot load the Kubernetes configuration" in err
    assert err.count("\n") == 1


def test_port_in_use_is_one_line_and_exit_2(
    local_tls: Any, serve_files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = run_cli(
            ["serve", "--tls-cert", str(local_tls.cert_file), "--tls-key",
             str(local_tls.key_file), "--service-accounts", str(serve_files / "sas.yaml"),
             "--bind-address", "127.0.0.1", "--port", str(port), "--metrics-port", "0"]
        )  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"irsa-webhook: cannot listen on 127.0.0.1:{port}")
    assert "address already in use" in err[-1]
