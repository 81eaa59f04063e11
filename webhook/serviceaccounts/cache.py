"""ServiceAccounts from the Kubernetes API: a list+watch cache that never races a new account.

The cache lists every ServiceAccount (paginated), then watches from the list's resourceVersion
with bookmarks. It keeps every account, annotated or not, so a miss means "not seen yet", never
"has no role": on a miss it asks the API for that one account directly (bounded in time,
rate-limited, concurrent asks for one key coalesced). Responses are read as raw JSON: building
client model objects for 100,000 accounts costs seconds and hundreds of megabytes.

Ordering rules, because a direct GET and the watch can disagree for a moment:

- The watch is the authority for what the store holds. Its events are applied in order, so its
  last word on a key is never older than an earlier word of its own.
- A direct lookup answers its own caller with what the API said, and fills the store only for a
  key the watch has not written since the lookup was sent (a DELETE that overtook our GET must
  not be undone by the GET's reply).
- An entry filled by a lookup is provisional until the watch catches up with it. Kubernetes
  calls resourceVersion opaque; every etcd-backed API server makes it a decimal etcd revision,
  and only there do we compare: a watch event older than the provisional entry is history we
  have already seen past, and is skipped (the newer event is on its way). When either version is
  not a decimal number, the watch's event is applied as it comes.
- A 404 is not remembered. A negative answer cached even briefly would hide an account created
  right after it, which is the very race this cache exists to close; the rate limit protects the
  API instead. (The API server's ServiceAccount admission plugin rejects pods naming a missing
  account before we see them, so repeated lookups of a missing account are rare.)
- A relist (after 410 Gone) replaces the store atomically with the listed snapshot; entries not
  in it are gone. Provisional entries newer than the snapshot survive it, and the watch from the
  snapshot's version will deliver them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import aiohttp
from kubernetes_asyncio import client

from webhook.identity import ServiceAccountIdentity

log = logging.getLogger(__name__)

Key = tuple[str, str]
_NO_ANNOTATIONS: Mapping[str, str] = MappingProxyType({})
_HTTP_GONE = 410


@dataclass
class CacheStats:
    """Plain counters; the server turns them into Prometheus metrics at scrape time."""

    misses: int = 0  # get() for a key the store did not hold
    direct_lookups: int = 0  # GETs of one ServiceAccount sent to the API
    lookup_failures: int = 0  # direct lookups that timed out or failed (answered None)
    watch_restarts: int = 0  # watches opened after the first one
    relists: int = 0  # full lists completed after the first one (after 410 Gone)


class _Gone(Exception):
    """The API no longer has history from our resourceVersion: relist."""


class _ApiStatus(Exception):
    def __init__(self, what: str, status: object) -> None:
        super().__init__(f"{what}: API answered status {status}")


class _Lookup:
    """One direct GET in flight, shared by every caller asking for the same key meanwhile."""

    __slots__ = ("overtaken", "task")

    def __init__(self) -> None:
        self.overtaken = False  # the watch or a relist wrote this key while the GET was out
        self.task: asyncio.Task[ServiceAccountIdentity | None] | None = None


class _TokenBucket:
    """At most `rate` lookups a second on average, `burst` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.updated = time.monotonic()

    async def take(self) -> None:
        while True:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return
            await asyncio.sleep((1.0 - self.tokens) / self.rate)


class _Backoff:
    """Exponential with full jitter, so a fleet of webhooks does not stampede a recovering API."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = initial
        self.maximum = maximum
        self.attempts = 0

    def next(self) -> float:
        ceiling = min(self.maximum, self.initial * (2**self.attempts))
        self.attempts += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempts = 0


async def _json_body(response: aiohttp.ClientResponse, what: str) -> Any:
    """The parsed body of a 200 answer; 410 raises _Gone, any other status _ApiStatus."""
    try:
        if response.status == _HTTP_GONE:
            raise _Gone
        if response.status != 200:
            raise _ApiStatus(what, response.status)
        return json.loads(await response.read())
    finally:
        response.release()


def _describe(error: BaseException) -> str:
    """One line for a log; a timeout's message is empty, so name the type."""
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _revision(resource_version: str) -> int | None:
    """The etcd revision behind a resourceVersion, when it is one (see the module docstring)."""
    return int(resource_version) if resource_version.isdecimal() else None


class ServiceAccountCache:
    """A ServiceAccountSource backed by the Kubernetes API (list+watch, direct lookup on miss)."""

    def __init__(
        self,
        api_client: client.ApiClient,
        annotation_prefix: str,
        lookup_timeout: float = 1.0,
        *,
        page_size: int = 500,
        lookup_rate: float = 100.0,
        lookup_burst: int = 200,
        lookup_concurrency: int = 16,
        watch_timeout: int = 300,
        request_timeout: float = 30.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self._core = client.CoreV1Api(api_client)
        self._wanted = annotation_prefix + "/"
        self.lookup_timeout = lookup_timeout
        self.page_size = page_size
        self.watch_timeout = watch_timeout
        self.request_timeout = request_timeout
        self.stop_timeout = stop_timeout
        self.stats = CacheStats()
        self._store: dict[Key, ServiceAccountIdentity] = {}
        self._provisional: dict[Key, int] = {}  # key -> revision of a direct lookup's reply
        self._lookups: dict[Key, _Lookup] = {}
        self._bucket = _TokenBucket(lookup_rate, lookup_burst)
        self._lookup_slots = asyncio.Semaphore(lookup_concurrency)
        self._backoff = _Backoff(backoff_initial, backoff_max)
        self._resource_version = ""
        self._ready = False
        self._watched_before = False
        self._listed_before = False
        self._task: asyncio.Task[None] | None = None

    # ---- ServiceAccountSource ----

    async def get(self, namespace: str, name: str) -> ServiceAccountIdentity | None:
        identity = self._store.get((namespace, name))
        if identity is not None:
            return identity
        self.stats.misses += 1
        return await self._look_up((namespace, name))

    def cached(self, namespace: str, name: str) -> ServiceAccountIdentity | None:
        """What the store holds for this key right now, without asking the API."""
        return self._store.get((namespace, name))

    def is_ready(self) -> bool:
        return self._ready

    @property
    def resource_version(self) -> str:
        """Where the next watch resumes: the last version seen in a list, event or bookmark."""
        return self._resource_version

    def __len__(self) -> int:
        return len(self._store)

    # ---- lifecycle ----

    async def start(self) -> None:
        """Begin list+watch in the background; returns at once (see is_ready)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="serviceaccount-cache")

    async def stop(self) -> None:
        """Cancel the watch and any lookups in flight, waiting at most stop_timeout."""
        tasks = [lookup.task for lookup in self._lookups.values() if lookup.task is not None]
        if self._task is not None:
            tasks.append(self._task)
            self._task = None
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=self.stop_timeout)

    # ---- direct lookups ----

    async def _look_up(self, key: Key) -> ServiceAccountIdentity | None:
        lookup = self._lookups.get(key)
        if lookup is None:
            lookup = _Lookup()
            lookup.task = asyncio.create_task(self._fetch(key, lookup))
            self._lookups[key] = lookup
            lookup.task.add_done_callback(lambda _: self._forget_lookup(key, lookup))
        assert lookup.task is not None
        try:
            # Shielded: one caller giving up must not cancel the GET others wait on.
            return await asyncio.wait_for(asyncio.shield(lookup.task), self.lookup_timeout)
        except TimeoutError:
            return None
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if lookup.task.cancelled() and current is not None and not current.cancelling():
                return None  # the cache is stopping, not our caller: answer like a failed lookup
            raise

    def _forget_lookup(self, key: Key, lookup: _Lookup) -> None:
        if self._lookups.get(key) is lookup:
            del self._lookups[key]

    async def _fetch(self, key: Key, lookup: _Lookup) -> ServiceAccountIdentity | None:
        namespace, name = key
        try:
            async with asyncio.timeout(self.lookup_timeout), self._lookup_slots:
                await self._bucket.take()
                self.stats.direct_lookups += 1
                response = await self._core.read_namespaced_service_account(
                    name, namespace, _preload_content=False, _request_timeout=self.lookup_timeout
                )
                if response.status == 404:
                    response.release()
                    return None
                obj = await _json_body(response, "lookup")
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.stats.lookup_failures += 1
            log.warning(
                "direct lookup of ServiceAccount %s/%s failed: %s",
                namespace,
                name,
                _describe(error),
            )
            return None
        identity = self._identity(obj.get("metadata") or {})
        if not lookup.overtaken and key not in self._store:
            self._store[key] = identity
            revision = _revision(identity.resource_version)
            if revision is not None:
                self._provisional[key] = revision
        return identity

    # ---- list and watch ----

    async def _run(self) -> None:
        listed = False
        while True:
            try:
                if not listed:
                    await self._relist()
                    if self._listed_before:
                        self.stats.relists += 1
                    self._listed_before = listed = True
                    self._backoff.reset()
                started = time.monotonic()
                events = await self._watch()
                # A watch that ends at once with nothing to say is failing quietly: back off.
                if events == 0 and time.monotonic() - started < 1.0:
                    await asyncio.sleep(self._backoff.next())
                else:
                    self._backoff.reset()
            except _Gone:
                log.info("ServiceAccount watch expired (410 Gone): listing again")
                listed = False
            except asyncio.CancelledError:
                raise
            except Exception as error:
                delay = self._backoff.next()
                what = "watch" if listed else "list"
                log.warning(
                    "ServiceAccount %s failed (%s); retrying in %.2fs",
                    what,
                    _describe(error),
                    delay,
                )
                await asyncio.sleep(delay)

    async def _relist(self) -> None:
        """Page through every ServiceAccount, then swap the store in one step."""
        store: dict[Key, ServiceAccountIdentity] = {}
        identity = self._identity
        token: str | None = None
        while True:
            response = await self._core.list_service_account_for_all_namespaces(
                limit=self.page_size,
                _continue=token,
                _preload_content=False,
                _request_timeout=aiohttp.ClientTimeout(total=self.request_timeout),
            )
            page = await _json_body(response, "list")  # 410: the continue token expired
            for item in page.get("items") or ():
                entry = identity(item.get("metadata") or {})
                store[(entry.namespace, entry.name)] = entry
            metadata = page.get("metadata") or {}
            token = metadata.get("continue")
            if not token:
                self._replace(store, str(metadata.get("resourceVersion") or ""))
                return

    def _replace(self, store: dict[Key, ServiceAccountIdentity], resource_version: str) -> None:
        listed_revision = _revision(resource_version)
        provisional: dict[Key, int] = {}
        if listed_revision is not None:
            for key, revision in self._provisional.items():
                entry = self._store.get(key)
                if revision > listed_revision and entry is not None:
                    store[key] = entry
                    provisional[key] = revision
        for lookup in self._lookups.values():
            lookup.overtaken = True
        self._store = store
        self._provisional = provisional
        self._resource_version = resource_version
        self._ready = True
        log.info(
            "ServiceAccount cache holds %d accounts at version %s", len(store), resource_version
        )

    async def _watch(self) -> int:
        """One watch from the current resourceVersion; returns the number of events applied."""
        if self._watched_before:
            self.stats.watch_restarts += 1
        self._watched_before = True
        # Spread between 1x and 2x, as client-go does, so many webhooks do not re-watch in step.
        timeout_seconds = int(self.watch_timeout * random.uniform(1.0, 2.0))
        response = await self._core.list_service_account_for_all_namespaces(
            watch=True,
            allow_watch_bookmarks=True,
            resource_version=self._resource_version,
            timeout_seconds=timeout_seconds,
            _preload_content=False,
            # No total bound on a stream; a connection silent past the server's own timeout is dead.
            _request_timeout=aiohttp.ClientTimeout(
                total=None,
                sock_connect=self.request_timeout,
                sock_read=timeout_seconds + self.request_timeout,
            ),
        )
        events = 0
        try:
            if response.status == _HTTP_GONE:
                raise _Gone
            if response.status != 200:
                raise _ApiStatus("watch", response.status)
            async for line in response.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                event_type = event.get("type")
                obj = event.get("object") or {}
                if event_type == "ERROR":
                    if obj.get("code") == _HTTP_GONE:
                        raise _Gone
                    raise _ApiStatus("watch", obj.get("code"))
                self._apply(event_type, obj.get("metadata") or {})
                events += 1
        finally:
            response.close()
        return events

    def _apply(self, event_type: str, metadata: Mapping[str, Any]) -> None:
        resource_version = str(metadata.get("resourceVersion") or "")
        if event_type != "BOOKMARK":
            key = (str(metadata.get("namespace") or ""), str(metadata.get("name") or ""))
            lookup = self._lookups.get(key)
            if lookup is not None:
                lookup.overtaken = True
            if self._is_behind_lookup(key, resource_version):
                self._resource_version = resource_version
                return
            if event_type == "DELETED":
                self._store.pop(key, None)
            elif event_type in ("ADDED", "MODIFIED"):
                self._store[key] = self._identity(metadata)
        if resource_version:
            self._resource_version = resource_version

    def _is_behind_lookup(self, key: Key, resource_version: str) -> bool:
        """True for a watch event older than what a direct lookup already told us of this key."""
        provisional = self._provisional.get(key)
        if provisional is None:
            return False
        revision = _revision(resource_version)
        if revision is not None and revision < provisional:
            return True
        del self._provisional[key]
        return False

    def _identity(self, metadata: Mapping[str, Any]) -> ServiceAccountIdentity:
        """Like ServiceAccountIdentity.from_object, tuned for 100,000 accounts: namespaces are
        interned and accounts without our annotations share one empty mapping."""
        annotations = metadata.get("annotations")
        kept = _NO_ANNOTATIONS
        if annotations:
            wanted = self._wanted
            ours = {k: str(v) for k, v in annotations.items() if k.startswith(wanted)}
            if ours:
                kept = ours
        return ServiceAccountIdentity(
            sys.intern(str(metadata.get("namespace") or "")),
            str(metadata.get("name") or ""),
            kept,
            str(metadata.get("resourceVersion") or ""),
        )


__all__ = ["CacheStats", "ServiceAccountCache"]
