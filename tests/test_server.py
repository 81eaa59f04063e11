"""The webhook server in process, over real TLS on loopback: answers, 4xx, health, metrics, logs."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import logging
import os
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jsonpatch
import pytest

from webhook.identity import ServiceAccountIdentity
from webhook.server.app import Admission, make_metrics_app, make_webhook_app
from webhook.server.logs import JsonFormatter, TextFormatter
from webhook.server.metrics import ServerMetrics
from webhook.server.runner import WebhookServer
from webhook.server.tls import ReloadingTLS, TLSSettings, openssl_ciphers
from webhook.serviceaccounts.offline import OfflineServiceAccounts
from webhook.settings import MutationSettings

ROLE_ARN = "arn:aws:iam::111122223333:role/s3-reader"


class SwitchableSource:
    """The real offline source behind switches for what it never does by itself: being not
    ready, or failing."""

    def __init__(self, inner: OfflineServiceAccounts) -> None:
        self.inner = inner
        self.ready = True
        self.fail = False

    async def get(self, namespace: str, name: str) -> ServiceAccountIdentity | None:
        if self.fail:
            raise RuntimeError("the source broke")
        return await self.inner.get(namespace, name)

    def is_ready(self) -> bool:
        return self.ready and self.inner.is_ready()

    def __len__(self) -> int:
        return len(self.inner)


def review(
    pod: Any, *, uid: str = "uid-1", namespace: str = "default", dry_run: bool = False
) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE",
            "namespace": namespace,
            "object": pod,
            "dryRun": dry_run,
        },
    }


def pod(service_account: str = "s3-reader", name: str = "app") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "serviceAccountName": service_account,
            "containers": [{"name": "app", "image": "amazon/aws-cli"}],
        },
    }


@dataclass
class Running:
    server: WebhookServer
    source: SwitchableSource
    session: aiohttp.ClientSession

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.server.metrics_port}"

    async def post(self, body: Any, **kwargs: Any) -> aiohttp.ClientResponse:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
        return await self.session.post(f"{self.url}/mutate", data=data, headers=headers, **kwargs)


@pytest.fixture
async def running(local_tls: Any) -> AsyncIterator[Running]:
    accounts = OfflineServiceAccounts()
    accounts.add(
        {
            "kind": "ServiceAccount",
            "metadata": {
                "name": "s3-reader",
                "namespace": "default",
                "annotations": {"eks.amazonaws.com/role-arn": ROLE_ARN},
            },
        }
    )
    accounts.add({"kind": "ServiceAccount", "metadata": {"name": "plain", "namespace": "default"}})
    source = SwitchableSource(accounts)
    tls = ReloadingTLS(TLSSettings(local_tls.cert_file, local_tls.key_file), check_interval=0.05)
    admission = Admission(
        source, MutationSettings(), ServerMetrics(source, tls.seconds_until_expiry)
    )
    server = WebhookServer(
        make_webhook_app(admission),
        make_metrics_app(admission),
        tls,
        host="127.0.0.1",
        port=0,
        metrics_port=0,
    )
    await server.start()
    connector = aiohttp.TCPConnector(ssl=local_tls.client_context())
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=10)
    ) as session:
        try:
            yield Running(server, source, session)
        finally:
            await server.stop()


def applied(pod_object: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    patch = json.loads(base64.b64decode(answer["response"]["patch"]))
    return jsonpatch.apply_patch(copy.deepcopy(pod_object), patch)


async def test_pod_with_role_is_mutated_over_tls(running: Running) -> None:
    the_pod = pod()
    async with await running.post(review(the_pod, uid="abc")) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        answer = await resp.json()
    assert answer["apiVersion"] == "admission.k8s.io/v1"
    assert answer["kind"] == "AdmissionReview"
    assert answer["response"]["uid"] == "abc"
    assert answer["response"]["allowed"] is True
    env = {
        e["name"]: e.get("value") for e in applied(the_pod, answer)["spec"]["containers"][0]["env"]
    }
    assert env["AWS_ROLE_ARN"] == ROLE_ARN
    assert env["AWS_WEB_IDENTITY_TOKEN_FILE"].endswith("/token")


async def test_pod_without_role_is_allowed_unchanged(running: Running) -> None:
    async with await running.post(review(pod("plain"))) as resp:
        answer = await resp.json()
    assert resp.status == 200
    assert answer["response"]["allowed"] is True
    assert "patch" not in answer["response"]


async def test_wrong_content_type_is_415(running: Running) -> None:
    async with await running.post(review(pod()), headers={"Content-Type": "text/plain"}) as resp:
        assert resp.status == 415
        assert "application/json" in await resp.text()


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "AdmissionReview"),
        (b'{"kind": "AdmissionReview"}', "request"),
        (b'{"request": {"object": {}}}', "uid"),
        (b"[" * 100_000, "not JSON"),  # nested past the decoder's depth limit
    ],
)
async def test_bodies_that_are_not_reviews_are_400(
    running: Running, body: bytes, says: str
) -> None:
    async with await running.post(body) as resp:
        assert resp.status == 400
        text = await resp.text()
    assert says in text
    assert text.count("\n") == 1  # one line naming what was wrong


async def test_body_over_the_limit_is_413(running: Running) -> None:
    the_pod = pod()
    the_pod["metadata"]["annotations"] = {"padding": "x" * (4 * 1024 * 1024)}
    async with await running.post(review(the_pod)) as resp:
        assert resp.status == 413


async def test_odd_pod_is_allowed_with_a_warning(running: Running) -> None:
    odd = pod()
    odd["spec"]["containers"][0]["env"] = "not a list"
    async with await running.post(review(odd)) as resp:
        assert resp.status == 200
        answer = await resp.json()
    assert answer["response"]["allowed"] is True
    assert answer["response"]["warnings"]
    applied(odd, answer)  # whatever was patched still applies


async def test_review_whose_object_is_not_a_pod_is_allowed_unchanged(running: Running) -> None:
    async with await running.post(review("not an object", uid="odd")) as resp:
        assert resp.status == 200
        answer = await resp.json()
    assert answer["response"]["uid"] == "odd"
    assert answer["response"]["allowed"] is True
    assert "patch" not in answer["response"]


async def test_failure_behind_the_handler_is_allowed_with_warning_not_500(running: Running) -> None:
    running.source.fail = True
    async with await running.post(review(pod(), uid="u-err")) as resp:
        assert resp.status == 200
        answer = await resp.json()
    assert answer["response"] == {
        "uid": "u-err",
        "allowed": True,
        "warnings": [answer["response"]["warnings"][0]],
    }
    assert "admitted it unchanged" in answer["response"]["warnings"][0]
    async with running.session.get(f"{running.metrics_url}/metrics") as resp:
        text = await resp.text()
    assert 'irsa_webhook_admissions_total{dry_run="false",outcome="error"} 1.0' in text


async def test_health_and_readiness_on_both_ports(running: Running) -> None:
    for base in (running.url, running.metrics_url):
        async with running.session.get(f"{base}/healthz") as resp:
            assert resp.status == 200
        async with running.session.get(f"{base}/readyz") as resp:
            assert resp.status == 200
    running.source.ready = False
    for base in (running.url, running.metrics_url):
        async with running.session.get(f"{base}/readyz") as resp:
            assert resp.status == 503
        async with running.session.get(f"{base}/healthz") as resp:
            assert resp.status == 200  # alive even when not ready


async def test_metrics_count_admissions_and_describe_the_cache_and_certificate(
    running: Running,
) -> None:
    for uid, dry_run, sa in (
        ("1", False, "s3-reader"),
        ("2", True, "s3-reader"),
        ("3", False, "plain"),
    ):
        async with await running.post(review(pod(sa), uid=uid, dry_run=dry_run)) as resp:
            assert resp.status == 200
    async with await running.post(b"nope") as resp:
        assert resp.status == 400
    async with running.session.get(f"{running.metrics_url}/metrics") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/plain"
        text = await resp.text()
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert samples['irsa_webhook_admissions_total{dry_run="false",outcome="mutated"}'] == 1
    assert samples['irsa_webhook_admissions_total{dry_run="true",outcome="mutated"}'] == 1
    assert samples['irsa_webhook_admissions_total{dry_run="false",outcome="skipped"}'] == 1
    assert samples["irsa_webhook_admission_duration_seconds_count"] == 3
    assert samples['irsa_webhook_rejected_requests_total{code="400"}'] == 1
    assert samples["irsa_webhook_serviceaccount_cache_size"] == 2
    assert samples["irsa_webhook_serviceaccount_cache_ready"] == 1
    # The test certificate is valid for 365 days.
    assert 364 * 86400 < samples["irsa_webhook_serving_certificate_expiry_seconds"] <= 365 * 86400
    # The metrics port is plain HTTP only: /mutate is not there.
    async with running.session.post(f"{running.metrics_url}/mutate", json=review(pod())) as resp:
        assert resp.status in (404, 405)


async def test_one_log_line_per_admission_with_names_not_secrets(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="webhook.admission")
    the_pod = pod(name="")
    the_pod["metadata"]["generateName"] = "worker-"
    the_pod["spec"]["containers"][0]["env"] = [{"name": "SECRET_TOKEN", "value": "hunter2"}]
    async with await running.post(review(the_pod, uid="log-1", dry_run=True)) as resp:
        assert resp.status == 200
    async with await running.post(review(pod("ghost"), uid="log-2")) as resp:
        assert resp.status == 200
    records = [r for r in caplog.records if r.name == "webhook.admission"]
    assert len(records) == 2
    for formatter in (JsonFormatter(), TextFormatter()):
        lines = [formatter.format(r) for r in records]
        assert all("\n" not in line and "hunter2" not in line for line in lines)
    first, second = (json.loads(JsonFormatter().format(r)) for r in records)
    assert first["namespace"] == "default"
    assert first["pod"] == "worker-"
    assert first["service_account"] == "s3-reader"
    assert first["result"] == "mutated"
    assert first["dry_run"] is True
    assert first["duration_ms"] >= 0
    assert second["result"] == "skipped"
    assert second["service_account"] == "ghost"
    assert second["reason"]  # says why not
    text = TextFormatter().format(records[1])
    assert "result=skipped" in text and "service_account=ghost" in text


async def _peer_serial(port: int, ctx: ssl.SSLContext) -> int:
    from cryptography import x509

    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
    return x509.load_der_x509_certificate(der).serial_number


async def test_replaced_certificate_is_served_without_restart_or_failed_request(
    running: Running, local_tls: Any
) -> None:
    from webhook.certificates import issue_serving_cert

    client_ctx = local_tls.client_context()
    port = running.server.port
    assert await _peer_serial(port, client_ctx) == local_tls.server.cert.serial_number

    stop = asyncio.Event()
    results: list[int | str] = []

    async def flow() -> None:
        # A new connection for every request: each one does a handshake with the current context.
        connector = aiohttp.TCPConnector(ssl=client_ctx, force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            for i in range(5000):
                if stop.is_set():
                    return
                try:
                    async with session.post(
                        f"{running.url}/mutate", json=review(pod(), uid=f"flow-{i}")
                    ) as resp:
                        await resp.read()
                        results.append(resp.status)
                except (aiohttp.ClientError, ssl.SSLError, OSError) as exc:
                    results.append(repr(exc))

    flows = [asyncio.create_task(flow()) for _ in range(4)]
    while len(results) < 20:
        await asyncio.wait(flows, timeout=0.05)
    renewed = issue_serving_cert(local_tls.ca, ["localhost", "127.0.0.1"])
    renewed.write(local_tls.cert_file, local_tls.key_file, overwrite=True)

    async def new_cert_served() -> None:
        while await _peer_serial(port, client_ctx) != renewed.cert.serial_number:
            await asyncio.wait(flows, timeout=0.05)

    await asyncio.wait_for(new_cert_served(), timeout=10)
    before_stop = len(results)
    while len(results) < before_stop + 20:
        await asyncio.wait(flows, timeout=0.05)
    stop.set()
    await asyncio.wait_for(asyncio.gather(*flows), timeout=10)
    assert len(results) >= 40
    assert all(status == 200 for status in results), [r for r in results if r != 200][:3]
    assert running.server.tls.reloads == 1
    assert running.server.tls.certificate.serial_number == renewed.cert.serial_number


async def _handshake(port: int, ctx: ssl.SSLContext) -> tuple[str, str]:
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
    try:
        sslobj = writer.get_extra_info("ssl_object")
        return sslobj.version(), sslobj.cipher()[0]
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("min_version", "go_suites", "client_max", "expect"),
    [
        (
            "1.2",
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            ssl.TLSVersion.TLSv1_2,
            ("TLSv1.2", "ECDHE-ECDSA-AES256-GCM-SHA384"),
        ),
        (
            "1.2",
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305,TLS_AES_128_GCM_SHA256",
            ssl.TLSVersion.TLSv1_2,
            ("TLSv1.2", "ECDHE-ECDSA-CHACHA20-POLY1305"),
        ),
        ("1.3", "", ssl.TLSVersion.TLSv1_3, ("TLSv1.3", None)),
        ("1.3", "", ssl.TLSVersion.TLSv1_2, None),  # refused
    ],
)
async def test_tls_version_floor_and_cipher_suites(
    local_tls: Any,
    min_version: str,
    go_suites: str,
    client_max: ssl.TLSVersion,
    expect: tuple[str, str | None] | None,
) -> None:
    settings = TLSSettings(
        local_tls.cert_file, local_tls.key_file, min_version, openssl_ciphers(go_suites)
    )
    tls = ReloadingTLS(settings)
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=tls.context)
    client = local_tls.client_context()
    client.maximum_version = client_max
    try:
        port = server.sockets[0].getsockname()[1]
        if expect is None:
            with pytest.raises((ssl.SSLError, ConnectionResetError)):
                await _handshake(port, client)
        else:
            version, cipher = await _handshake(port, client)
            assert version == expect[0]
            if expect[1]:
                assert cipher == expect[1]
    finally:
        server.close()


async def test_half_written_rotation_keeps_the_old_pair_until_the_new_one_is_whole(
    running: Running, local_tls: Any
) -> None:
    """cp of tls.crt then tls.key is not atomic: in between, the old pair must stay in use
    (reloading into the live context would break every handshake at that point)."""
    from webhook.certificates import issue_serving_cert

    client_ctx = local_tls.client_context()
    port = running.server.port
    renewed = issue_serving_cert(local_tls.ca, ["localhost", "127.0.0.1"])
    local_tls.cert_file.write_bytes(renewed.cert_pem)  # the key still belongs to the old cert
    assert running.server.tls.reload_if_changed() is False
    assert await _peer_serial(port, client_ctx) == local_tls.server.cert.serial_number
    async with await running.post(review(pod(), uid="mid-rotation")) as resp:
        assert resp.status == 200
    renewed.write(local_tls.cert_file, local_tls.key_file, overwrite=True)

    async def new_cert_served() -> None:
        while await _peer_serial(port, client_ctx) != renewed.cert.serial_number:
            await asyncio.sleep(0.02)

    await asyncio.wait_for(new_cert_served(), timeout=10)


async def test_deeply_nested_pod_is_answered_not_500(running: Running) -> None:
    deep: Any = "x"
    for _ in range(900):  # parses (under the recursion limit) but is no sane pod
        deep = [deep]
    odd = pod()
    odd["spec"]["containers"][0]["args"] = deep
    async with await running.post(review(odd, uid="deep")) as resp:
        assert resp.status == 200
        answer = await resp.json()
    assert answer["response"]["uid"] == "deep"
    assert answer["response"]["allowed"] is True


async def test_kubelet_style_symlink_swap_is_picked_up(local_tls: Any, tmp_path: Path) -> None:
    """A Secret volume: tls.crt -> ..data/tls.crt, and ..data is swapped to a new directory."""
    from webhook.certificates import issue_serving_cert

    volume = tmp_path / "volume"
    first = volume / "..2026_01_01"
    first.mkdir(parents=True)
    local_tls.server.write(first / "tls.crt", first / "tls.key")
    (volume / "..data").symlink_to(first.name)
    for name in ("tls.crt", "tls.key"):
        (volume / name).symlink_to(f"..data/{name}")
    tls = ReloadingTLS(TLSSettings(volume / "tls.crt", volume / "tls.key"), check_interval=0.02)
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=tls.context)
    watcher = asyncio.create_task(tls.watch())
    try:
        port = server.sockets[0].getsockname()[1]
        client = local_tls.client_context()
        assert await _peer_serial(port, client) == local_tls.server.cert.serial_number
        renewed = issue_serving_cert(local_tls.ca, ["localhost", "127.0.0.1"])
        second = volume / "..2026_02_01"
        second.mkdir()
        renewed.write(second / "tls.crt", second / "tls.key")
        (volume / "..data_tmp").symlink_to(second.name)
        os.replace(volume / "..data_tmp", volume / "..data")  # the kubelet's atomic swap

        async def new_cert_served() -> None:
            while await _peer_serial(port, client) != renewed.cert.serial_number:
                await asyncio.sleep(0.02)

        await asyncio.wait_for(new_cert_served(), timeout=10)
    finally:
        watcher.cancel()
        server.close()
