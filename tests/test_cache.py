"""The API-backed ServiceAccount cache against our fake API, over TLS, through the real
kubernetes-asyncio client configured from a real kubeconfig file."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import jsonpatch
import pytest
from fakeapi import FakeKubeAPI
from kubernetes_asyncio import client

from webhook.admission import admit, parse_review
from webhook.serviceaccounts.cache import ServiceAccountCache
from webhook.settings import MutationSettings

PREFIX = "eks.amazonaws.com"
ROLE_KEY = f"{PREFIX}/role-arn"
WAIT = 10.0  # bound on every condition a test waits for

# Retries come quickly in tests; the production defaults back off for longer.
FAST: dict[str, Any] = {"backoff_initial": 0.02, "backoff_max": 0.1, "lookup_timeout": 1.0}


async def eventually(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Poll a condition until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting until {what}")
        await asyncio.sleep(0.005)


def role(n: int | str) -> str:
    return f"arn:aws:iam::111122223333:role/role-{n}"


class Caches:
    """Starts caches for a test and stops every one of them afterwards."""

    def __init__(self, api_client: client.ApiClient, fake_api: FakeKubeAPI) -> None:
        self.api_client = api_client
        self.fake_api = fake_api
        self.started: list[ServiceAccountCache] = []

    async def start(self, ready: bool = True, **options: Any) -> ServiceAccountCache:
        cache = ServiceAccountCache(self.api_client, PREFIX, **{**FAST, **options})
        self.started.append(cache)
        await cache.start()
        if ready:
            await eventually(cache.is_ready, "the cache holds its first list")
            # Tests that drop the watch must drop an open one.
            await eventually(lambda: self.fake_api.open_watches == 1, "the cache is watching")
        return cache


@pytest.fixture
async def caches(kube_client: client.ApiClient, fake_api: FakeKubeAPI) -> AsyncIterator[Caches]:
    made = Caches(kube_client, fake_api)
    yield made
    for cache in made.started:
        await asyncio.wait_for(cache.stop(), WAIT)


def pod_review(namespace: str, service_account: str) -> dict[str, Any]:
    pod = {
        "metadata": {"generateName": "app-", "namespace": namespace},
        "spec": {"serviceAccountName": service_account, "containers": [{"name": "app"}]},
    }
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": f"uid-{namespace}-{service_account}",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": "CREATE",
            "namespace": namespace,
            "object": pod,
        },
    }


async def test_initial_list_pages_through_every_account_and_keeps_only_our_annotations(
    fake_api: FakeKubeAPI, caches: Caches
) -> None:
    for i in range(1234):
        annotations = {ROLE_KEY: role(i), "other.example.com/x": "y"} if i % 3 == 0 else None
        fake_api.create(f"ns-{i % 7}", f"sa-{i}", annotations)

    cache = await caches.start(page_size=100)

    assert len(cache) == 1234
    assert fake_api.requests["list"] == 13  # 12 full pages of 100 and one of 34
    annotated = await cache.get("ns-0", "sa-0")
    assert annotated is not None
    assert dict(annotated.annotations) == {ROLE_KEY: role(0)}
    plain = await cache.get("ns-1", "sa-1")
    assert plain is not None and dict(plain.annotations) == {}  # exists, has no role
    assert cache.stats.misses == 0 and fake_api.requests["get"] == 0


async def test_a_pod_for_a_just_created_account_is_mutated_a_thousand_times_in_a_row(
    fake_api: FakeKubeAPI, caches: Caches
) -> None:
    # The thousand accounts are created back to back, far faster than any cluster makes them, so
    # the lookup rate limit is raised here; test_direct_lookups_are_rate_limited covers the limit.
    cache = await caches.start(lookup_rate=10_000.0, lookup_burst=10_000)
    settings = MutationSettings()
    for i in range(1000):
        fake_api.create("race", f"app-{i}", {ROLE_KEY: role(i)})
        request = parse_review(pod_review("race", f"app-{i}"))
        identity = await cache.get(request.namespace, request.service_account)
        review, _ = admit(request, identity, settings)

        response = review["response"]
        assert response["allowed"] is True
        assert "patch" in response, f"pod {i} for a ServiceAccount made just before was not mutated"
        patch = json.loads(base64.b64decode(response["patch"]))
        pod = jsonpatch.apply_patch(request.pod, patch)
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
        assert env["AWS_ROLE_ARN"] == role(i)

    assert cache.stats.misses > 0  # the race was real: the watch had not delivered them yet
    assert cache.stats.lookup_failures == 0
    await eventually(lambda: len(cache) == 1000, "the watch has delivered all 1000")


async def test_a_dropped_watch_resumes_from_where_it_was_and_misses_nothing(
    fake_api: FakeKubeAPI, caches: Caches
) -> None:
    fake_api.create("shop", "kept")
    fake_api.create("shop", "doomed")
    cache = await caches.start()

    fake_api.drop_watches()
    # While no watch is open: these changes must come from the resumed watch's replay.
    fake_api.create("shop", "new", {ROLE_KEY: role("new")})
    fake_api.update("shop", "kept", {ROLE_KEY: role("kept")})
    fake_api.delete("shop", "doomed")

    await eventually(
        lambda: cache.cached("shop", "doomed") is None,  # the last change replayed
        "the resumed watch replayed the changes",
    )
    assert cache.stats.watch_restarts >= 1 and len(cache) == 2
    lookups = fake_api.requests["get"]
    kept, new = await cache.get("shop", "kept"), await cache.get("shop", "new")
    assert kept is not None and kept.annotations[ROLE_KEY] == role("kept")
    assert new is not None and new.annotations[ROLE_KEY] == role("new")
    assert fake_api.requests["get"] == lookups  # served from the store, not looked up
    assert fake_api.requests["list"] == 1  # resumed, not relisted

    fake_api.create("shop", "later")  # and the resumed watch keeps delivering
    await eventually(lambda: len(cache) == 3, "a change after the resume arrived")


async def test_bookmarks_move_the_resume_point_so_a_quiet_watch_needs_no_relist(
    fake_api: FakeKubeAPI, caches: Caches
) -> None:
    fake_api.create("shop", "app")
    cache = await caches.start()

    fake_api.write_other_kinds(100)  # the cluster moves on; no ServiceAccount changes
    fake_api.send_bookmark()
    current = str(fake_api.resource_version)
    await eventually(lambda: cache.resource_version == current, "the bookmark arrived")
    fake_api.compact()  # history before the bookmark is gone
    fake_api.drop_watches()
    fake_api.create("shop", "next")

    await eventually(lambda: cache.cached("shop", "next") is not None, "the watch resumed")
    assert cache.stats.relists == 0 and fake_api.requests["list"] == 1


@pytest.mark.parametrize("how", ["compacted", "error-event", "http-status"])
async def test_410_gone_relists_and_replaces_the_store(
    fake_api: FakeKubeAPI, caches: Caches, how: str
) -> None:
    fake_api.create("shop", "stays", {ROLE_KEY: role("old")})
    fake_api.create("shop", "deleted-while-away")
    cache = await caches.start()
    assert len(cache) == 2

    fake_api.drop_watches()
    fake_api.delete("shop", "deleted-while-away")
    fake_api.update("shop", "stays", {ROLE_KEY: role("new")})
    fake_api.create("shop", "created-while-away")
    if how == "compacted":
        fake_api.compact()  # the resumed watch's version is now too old: 410 as an ERROR event
    else:
        fake_api.gone_next_watch = "event" if how == "error-event" else "status"

    await eventually(lambda: cache.stats.relists == 1, "the cache relisted")
    assert fake_api.requests["list"] == 2
    assert len(cache) == 2  # the new list replaced the store: the deleted one is gone
    lookups = fake_api.requests["get"]
    stays = await cache.get("shop", "stays")
    assert stays is not None and stays.annotations[ROLE_KEY] == role("new")
    assert await cache.get("shop", "created-while-away") is not None
    assert fake_api.requests["get"] == lookups
    assert await cache.get("shop", "deleted-while-away") is None

    fake_api.create("shop", "after-relist")  # and it watches again from the new list
    await eventually(lambda: len(cache) == 3, "a change after the relist arrived")


async def test_annotation_changes_are_applied(fake_api: FakeKubeAPI, caches: Caches) -> None:
    fake_api.create("shop", "app", {ROLE_KEY: role("first")})
    cache = await caches.start()

    def held_role() -> str | None:
        held = cache.cached("shop", "app")
        assert held is not None, "an updated account vanished from the cache"
        return held.annotations.get(ROLE_KEY)

    fake_api.update("shop", "app", {ROLE_KEY: role("second")})
    await eventually(lambda: held_role() == role("second"), "the update arrived")
    identity = await cache.get("shop", "app")
    assert identity is not None and identity.annotations[ROLE_KEY] == role("second")

    fake_api.update("shop", "app", None)  # role removed: exists, no role
    await eventually(lambda: held_role() is None, "the removal arrived")
    identity = await cache.get("shop", "app")
    assert identity is not None and dict(identity.annotations) == {}
    assert cache.stats.misses == 0


async def test_a_deleted_account_is_not_served_from_the_cache(
    fake_api: FakeKubeAPI, caches: Caches
) -> None:
    fake_api.create("shop", "app", {ROLE_KEY: role("x")})
    fake_api.create("shop", "other")
    cache = await caches.start()

    fake_api.delete("shop", "app")
    await eventually(lambda: len(cache) == 1, "the delete arrived")
    assert await cache.get("shop", "app") is None
    assert cache.stats.direct_lookups == 1  # the miss asked the API, which said 404


async def test_with_the_api_down_at_start_pods_are_still_answered_and_it_recovers(
    fake_api: FakeKubeAPI, caches: Caches
) -> None:
    fake_api.create("shop", "app", {ROLE_KEY: role("app")})
    await fake_api.go_down()

    cache = await caches.start(ready=False, lookup_timeout=0.5)
    assert not cache.is_ready()
    started = time.monotonic()
    assert await asyncio.wait_for(cache.get("shop", "app"), WAIT) is None
    assert time.monotonic() - started < 0.5 + 2.0  # the lookup timeout, plus slack for a busy CI
    assert not cache.is_ready()
    assert cache.stats.lookup_failures == 1

    await fake_api.come_up()
    await eventually(cache.is_ready, "the cache is ready once the API is back")
    identity = await cache.get("shop", "app")
    assert identity is not None and identity.annotations[ROLE_KEY] == role("app")


async def test_a_hanging_api_does_not_hold_an_admission_past_the_lookup_timeout(
    fake_api: FakeKubeAPI, caches: Caches
) -> None:
    cache = await caches.start(lookup_timeout=0.3)
    fake_api.delay = 30.0  # every new request hangs
    fake_api.create("shop", "app", {ROLE_KEY: role("app")})
    fake_api.drop_watches()  # so the event does not arrive either

    started = time.monotonic()
    assert await asyncio.wait_for(cache.get("shop", "app"), WAIT) is None
    assert time.monotonic() - started < 0.3 + 2.0  # not the 30 s the API hangs


async def test_server_errors_are_retried_until_the_list_succeeds(
    fake_api: FakeKubeAPI, caches: Caches
) -> None:
    fake_api.create("shop", "app")
    fake_api.fail_next = 3
    cache = await caches.start()
    assert fake_api.requests["list"] == 4 and len(cache) == 1

    fake_api.fail_next = 2  # the watch fails too, and is retried from the same version
    fake_api.drop_watches()
    fake_api.create("shop", "next")
    await eventually(lambda: len(cache) == 2, "the watch came back after two 500s")
    assert fake_api.requests["list"] == 1 + 3  # no relist for a 500


async def test_concurrent_misses_for_one_account_share_one_lookup(
    fake_api: FakeKubeAPI, caches: Caches
) -> None:
    cache = await caches.start()
    fake_api.reply_delay = 0.2
    fake_api.create("shop", "app", {ROLE_KEY: role("app")})

    answers = await asyncio.gather(*(cache.get("shop", "app") for _ in range(50)))

    assert all(a is not None and a.annotations[ROLE_KEY] == role("app") for a in answers)
    assert fake_api.requests["get"] == 1


async def test_direct_lookups_are_rate_limited_and_still_answered_in_time(
    fake_api: FakeKubeAPI, caches: Caches
) -> None:
    cache = await caches.start(lookup_rate=5.0, lookup_burst=3, lookup_timeout=0.4)
    started = time.monotonic()

    answers = await asyncio.gather(*(cache.get("shop", f"missing-{i}") for i in range(30)))

    elapsed = time.monotonic() - started
    assert answers == [None] * 30
    assert elapsed < 0.4 + 2.0  # nobody waited for a token past the lookup timeout
    assert fake_api.requests["get"] <= 3 + 5 * elapsed + 1


async def test_a_lookup_reply_never_undoes_a_delete_that_overtook_it(
    fake_api: FakeKubeAPI, caches: Caches
) -> None:
    fake_api.create("shop", "other")
    cache = await caches.start()
    fake_api.reply_delay = 0.3  # the GET reads the account, then takes a while to answer

    fake_api.create("shop", "brief", {ROLE_KEY: role("brief")})
    lookup = asyncio.create_task(cache.get("shop", "brief"))
    await eventually(lambda: fake_api.requests["get"] == 1, "the GET reached the API")
    fake_api.delete("shop", "brief")
    fake_api.create("shop", "marker")  # once the watch brought this, it brought the delete
    await eventually(lambda: len(cache) == 2, "the watch delivered the delete")

    answered = await lookup  # its caller hears what the API said at the time
    assert answered is not None and answered.annotations[ROLE_KEY] == role("brief")
    fake_api.reply_delay = 0.0
    assert len(cache) == 2  # but the store did not take the late reply over the delete
    assert await cache.get("shop", "brief") is None


async def test_a_lagging_watch_does_not_roll_back_what_a_lookup_already_saw(
    fake_api: FakeKubeAPI, caches: Caches
) -> None:
    cache = await caches.start(lookup_rate=10_000.0, lookup_burst=10_000)
    fake_api.stream_delay = 0.05  # the resumed watch replays slowly: a lagging watch
    fake_api.drop_watches()
    fake_api.create("shop", "app", {ROLE_KEY: role("old")})
    fake_api.update("shop", "app", {ROLE_KEY: role("new")})
    fake_api.create("shop", "marker")  # replayed last: once it is in, the replay is done

    seen: list[str] = []
    deadline = time.monotonic() + WAIT
    while len(cache) < 2 and time.monotonic() < deadline:
        identity = await cache.get("shop", "app")
        assert identity is not None
        seen.append(identity.annotations[ROLE_KEY])
        await asyncio.sleep(0.005)

    assert len(cache) == 2, "the replay did not finish"
    assert seen and set(seen) == {role("new")}, "an older watch event replaced a newer lookup"


async def test_stop_is_prompt_even_with_requests_hanging(
    fake_api: FakeKubeAPI, kube_client: client.ApiClient
) -> None:
    cache = ServiceAccountCache(kube_client, PREFIX, **FAST)
    await cache.start()
    await eventually(cache.is_ready, "ready")
    fake_api.delay = 30.0
    fake_api.drop_watches()  # the re-watch now hangs in the API
    lookup = asyncio.create_task(cache.get("shop", "hanging"))
    await eventually(lambda: fake_api.requests["get"] == 1, "a lookup is in flight")

    await asyncio.wait_for(cache.stop(), 2.0)
    assert await asyncio.wait_for(lookup, 2.0) is None
