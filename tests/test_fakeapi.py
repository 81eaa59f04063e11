"""The fake Kubernetes API read by the client library's own typed models and Watch helper: if
kubernetes-asyncio understands it as it understands a real API server, the cache's tests mean
something. (The cache itself reads raw JSON; this checks the wire format independently.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException

from tests.conftest import LocalTLS
from tests.fakeapi import FakeKubeAPI


@pytest.fixture
async def fake_api(local_tls: LocalTLS) -> AsyncIterator[FakeKubeAPI]:
    api = FakeKubeAPI(local_tls.server_context())
    await api.start()
    yield api
    await api.stop()


@pytest.fixture
async def core(
    fake_api: FakeKubeAPI, local_tls: LocalTLS, tmp_path: Path
) -> AsyncIterator[client.CoreV1Api]:
    kubeconfig = fake_api.write_kubeconfig(tmp_path / "kubeconfig", local_tls.ca_file)
    api_client = await config.new_client_from_config(config_file=str(kubeconfig))
    yield client.CoreV1Api(api_client)
    await api_client.close()


async def test_a_paginated_list_is_one_consistent_snapshot(
    fake_api: FakeKubeAPI, core: client.CoreV1Api
) -> None:
    for i in range(5):
        fake_api.create("shop", f"sa-{i}", {"eks.amazonaws.com/role-arn": f"arn-{i}"})

    first = await core.list_service_account_for_all_namespaces(limit=2)
    fake_api.create("shop", "sa-9-late")  # after the snapshot: not in later pages
    names = [item.metadata.name for item in first.items]
    token = first.metadata._continue
    while token:
        page = await core.list_service_account_for_all_namespaces(limit=2, _continue=token)
        assert page.metadata.resource_version == first.metadata.resource_version
        names += [item.metadata.name for item in page.items]
        token = page.metadata._continue

    assert names == [f"sa-{i}" for i in range(5)]
    assert first.items[0].metadata.annotations == {"eks.amazonaws.com/role-arn": "arn-0"}


async def test_get_of_a_missing_account_is_a_404_status(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as raised:
        await core.read_namespaced_service_account("absent", "shop")
    assert raised.value.status == 404
    assert '"reason":"NotFound"' in raised.value.body.replace(" ", "")


async def test_the_client_watch_reads_typed_events_and_a_410_error(
    fake_api: FakeKubeAPI, core: client.CoreV1Api
) -> None:
    fake_api.create("shop", "a")
    listed = await core.list_service_account_for_all_namespaces()
    fake_api.create("shop", "b")
    fake_api.update("shop", "a", {"k": "v"})
    fake_api.delete("shop", "b")

    seen = []
    async with watch.Watch().stream(
        core.list_service_account_for_all_namespaces,
        resource_version=listed.metadata.resource_version,
        timeout_seconds=1,
    ) as stream:
        async for event in stream:
            seen.append((event["type"], event["object"].metadata.name))
            if len(seen) == 3:
                break
    assert seen == [("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]

    fake_api.compact()
    with pytest.raises(ApiException) as raised:
        async with watch.Watch().stream(
            core.list_service_account_for_all_namespaces,
            resource_version=listed.metadata.resource_version,
            timeout_seconds=1,
        ) as stream:
            async for _ in stream:
                pass
    assert raised.value.status == 410


async def test_a_request_without_the_kubeconfig_token_is_refused(
    fake_api: FakeKubeAPI, local_tls: LocalTLS
) -> None:
    configuration = client.Configuration(host=fake_api.url)
    configuration.ssl_ca_cert = str(local_tls.ca_file)
    async with client.ApiClient(configuration) as api_client:
        with pytest.raises(ApiException) as raised:
            await client.CoreV1Api(api_client).list_service_account_for_all_namespaces()
    assert raised.value.status == 401
