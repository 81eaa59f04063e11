"""The fake Kubernetes API read by the client library's own typed models and Watch helper: if
kubernetes-asyncio understands it as it understands a real API server, the cache's tests mean
something. (The cache itself reads raw JSON; this checks the wire format independently.)"""

from __future__ import annotations

import pytest
from conftest import LocalTLS
from fakeapi import FakeKubeAPI
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException


@pytest.fixture
def core(kube_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(kube_client)


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

    since = listed.metadata.resource_version
    assert await watched(core, since, 3) == [("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]

    fake_api.compact()
    with pytest.raises(ApiException) as raised:
        await watched(core, since, 1)
    assert raised.value.status == 410


async def watched(core: client.CoreV1Api, since: str, count: int) -> list[tuple[str, str]]:
    """The first `count` events of a watch from `since`, as the client's Watch decodes them."""
    seen: list[tuple[str, str]] = []
    async with watch.Watch().stream(
        core.list_service_account_for_all_namespaces, resource_version=since, timeout_seconds=1
    ) as stream:
        async for event in stream:
            seen.append((event["type"], event["object"].metadata.name))
            if len(seen) == count:
                break
    return seen


async def test_a_request_without_the_kubeconfig_token_is_refused(
    fake_api: FakeKubeAPI, local_tls: LocalTLS
) -> None:
    configuration = client.Configuration(host=fake_api.url)
    configuration.ssl_ca_cert = str(local_tls.ca_file)
    async with client.ApiClient(configuration) as api_client:
        with pytest.raises(ApiException) as raised:
            await client.CoreV1Api(api_client).list_service_account_for_all_namespaces()
    assert raised.value.status == 401
