"""A fake Kubernetes API server for ServiceAccounts, speaking the real wire protocol.

There is no kube-apiserver binary on these machines, so the cache is tested against this: an
aiohttp server (TLS, bearer token) that answers what the real one answers for the requests our
cache makes, driven by the real kubernetes-asyncio client through a real kubeconfig:

- GET /api/v1/serviceaccounts: a list with metadata.resourceVersion, paginated with
  limit/continue over a consistent snapshot (continue tokens name the snapshot).
- the same with watch=true: a chunked stream of JSON lines (ADDED, MODIFIED, DELETED, BOOKMARK,
  ERROR), started from resourceVersion; a version older than the kept history is answered with
  an ERROR event carrying a 410 Status, as the real server does.
- GET /api/v1/namespaces/{ns}/serviceaccounts/{name}: the object, or a 404 Status.

Tests change ServiceAccounts through methods (create/update/delete), which bump one global
resourceVersion and emit events to open watches, and turn knobs: drop watches, answer 410 on the
next watch, answer 500, delay answers, go down and come back on the same port.

Run as a script (`python tests/fakeapi.py --count N --dir D`) it serves N ServiceAccounts from
its own process and writes D/kubeconfig: what bench/sync.py measures against.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import ssl
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

BASE = "/api/v1"
DEFAULT_TOKEN = "fake-api-bearer-token"
HISTORY_LIMIT = 10_000  # events kept for watches that resume from an older resourceVersion


def status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def _status_response(code: int, reason: str, message: str) -> web.Response:
    return web.json_response(status_body(code, reason, message), status=code)


def _query_bool(request: web.Request, name: str) -> bool:
    """Booleans as the API server parses them (Go's strconv.ParseBool); the Python client sends
    "True"."""
    return request.query.get(name, "") in ("1", "t", "T", "true", "TRUE", "True")


def _line(event_type: str, obj: Mapping[str, Any]) -> bytes:
    return json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode() + b"\n"


@dataclass(eq=False)  # identity, so watchers can sit in a set
class _Watcher:
    queue: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)


@dataclass
class _Snapshot:
    resource_version: int
    items: list[bytes]


class FakeKubeAPI:
    """One fake API server on 127.0.0.1. Mutating methods are synchronous: events are queued
    to every open watch before the method returns, as etcd orders them."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext | None = None,
        token: str = DEFAULT_TOKEN,
        bookmark_interval: float | None = None,
    ) -> None:
        self.ssl_context = ssl_context
        self.token = token
        self.bookmark_interval = bookmark_interval
        self.resource_version = 1
        self._objects: dict[tuple[str, str], dict[str, Any]] = {}
        self._encoded: dict[tuple[str, str], bytes] = {}
        self._history: list[tuple[int, bytes]] = []
        self._oldest_watchable = 1  # a watch from an older resourceVersion gets 410
        self._watchers: set[_Watcher] = set()
        self._snapshots: dict[str, _Snapshot] = {}
        self._snapshot_ids = itertools.count(1)
        self._uids = itertools.count(1)
        # Knobs and counters for tests.
        self.requests: Counter[str] = Counter()  # "list", "watch", "get"
        self.delay = 0.0  # seconds before answering any request
        self.reply_delay = 0.0  # seconds between reading a ServiceAccount and sending it (GET)
        self.stream_delay = 0.0  # seconds between two events on a watch stream
        self.fail_next = 0  # that many next requests answer 500
        self.gone_next_watch: str | None = None  # "event" or "status": how the next watch says 410
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    # ---- lifecycle ----

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_get(f"{BASE}/serviceaccounts", self._list_or_watch)
        app.router.add_get(f"{BASE}/namespaces/{{namespace}}/serviceaccounts/{{name}}", self._get)
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0)
        await self._runner.setup()
        await self._listen(port)

    async def _listen(self, port: int) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, "127.0.0.1", port, ssl_context=self.ssl_context)
        await self._site.start()
        server = self._site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def go_down(self) -> None:
        """Stop listening and cut every open connection, watches included: the API is down."""
        self.drop_watches()
        if self._site is not None:
            await self._site.stop()
            self._site = None
        assert self._runner is not None
        if self._runner.server is not None:
            await self._runner.server.shutdown(timeout=1.0)

    async def come_up(self) -> None:
        """Listen again on the same port."""
        await self._listen(self.port)

    async def stop(self) -> None:
        self.drop_watches()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def write_kubeconfig(self, path: Path, ca_file: Path | None) -> Path:
        """A kubeconfig like kubectl's: one cluster, one bearer-token user, one context."""
        cluster: dict[str, Any] = {"server": self.url}
        if ca_file is not None:
            cluster["certificate-authority"] = str(ca_file)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": cluster}],
            "users": [{"name": "tester", "user": {"token": self.token}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "tester"}}],
            "current-context": "fake",
        }
        path.write_text(json.dumps(config, indent=2))  # JSON is YAML
        return path

    # ---- what tests change ----

    def create(
        self, namespace: str, name: str, annotations: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        key = (namespace, name)
        if key in self._objects:
            raise ValueError(f"serviceaccount {namespace}/{name} already exists")
        metadata: dict[str, Any] = {
            "name": name,
            "namespace": namespace,
            "uid": f"00000000-0000-0000-0000-{next(self._uids):012d}",
            "creationTimestamp": "2026-01-01T00:00:00Z",
        }
        if annotations:
            metadata["annotations"] = dict(annotations)
        return self._store(
            "ADDED", key, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata}
        )

    def update(
        self, namespace: str, name: str, annotations: Mapping[str, str] | None
    ) -> dict[str, Any]:
        key = (namespace, name)
        obj = json.loads(json.dumps(self._objects[key]))
        if annotations:
            obj["metadata"]["annotations"] = dict(annotations)
        else:
            obj["metadata"].pop("annotations", None)
        return self._store("MODIFIED", key, obj)

    def delete(self, namespace: str, name: str) -> dict[str, Any]:
        key = (namespace, name)
        obj = self._objects.pop(key)
        del self._encoded[key]
        self.resource_version += 1
        obj = {
            **obj,
            "metadata": {**obj["metadata"], "resourceVersion": str(self.resource_version)},
        }
        self._emit(_line("DELETED", obj))
        return obj

    def populate(self, count: int, namespaces: int, annotate_every: int, prefix: str) -> None:
        """Load many ServiceAccounts at once, as an old cluster would hold them: no history is
        kept for them, so only a list (not a watch from an old version) sees them."""
        for i in range(count):
            namespace = f"ns-{i % namespaces:04d}"
            name = f"sa-{i:07d}"
            annotations = None
            if annotate_every and i % annotate_every == 0:
                annotations = {
                    f"{prefix}/role-arn": f"arn:aws:iam::111122223333:role/role-{i}",
                    "kubectl.kubernetes.io/last-applied-configuration": "{}",
                }
            self.create(namespace, name, annotations)
        self.compact()

    def compact(self) -> None:
        """Forget the event history, like etcd compaction: older watches now get 410."""
        self._history.clear()
        self._oldest_watchable = self.resource_version

    def drop_watches(self) -> None:
        """End every open watch stream (the server closes them cleanly)."""
        for watcher in list(self._watchers):
            watcher.queue.put_nowait(None)
        self._watchers.clear()

    def write_other_kinds(self, count: int) -> None:
        """Writes to other kinds of object: the cluster's resourceVersion moves on with no
        ServiceAccount event, which is what bookmarks exist for."""
        self.resource_version += count

    def send_bookmark(self) -> None:
        self._emit(_line("BOOKMARK", self._bookmark_object()), history=False)

    @property
    def open_watches(self) -> int:
        return len(self._watchers)

    def get_object(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._objects.get((namespace, name))

    def __len__(self) -> int:
        return len(self._objects)

    # ---- internals ----

    def _store(self, event_type: str, key: tuple[str, str], obj: dict[str, Any]) -> dict[str, Any]:
        self.resource_version += 1
        obj["metadata"]["resourceVersion"] = str(self.resource_version)
        self._objects[key] = obj
        encoded = json.dumps(obj, separators=(",", ":")).encode()
        self._encoded[key] = encoded
        self._emit(b'{"type":"' + event_type.encode() + b'","object":' + encoded + b"}\n")
        return obj

    def _emit(self, line: bytes, history: bool = True) -> None:
        if history:
            self._history.append((self.resource_version, line))
            if len(self._history) > HISTORY_LIMIT:
                dropped = len(self._history) - HISTORY_LIMIT
                self._oldest_watchable = self._history[dropped - 1][0]
                del self._history[:dropped]
        for watcher in self._watchers:
            watcher.queue.put_nowait(line)

    def _bookmark_object(self) -> dict[str, Any]:
        return {
            "kind": "ServiceAccount",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": str(self.resource_version)},
        }

    async def _gate(self, request: web.Request, kind: str) -> web.Response | None:
        """Auth and knobs shared by every endpoint; a response here ends the request."""
        self.requests[kind] += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _status_response(401, "Unauthorized", "Unauthorized")
        if self.fail_next > 0:
            self.fail_next -= 1
            return _status_response(500, "InternalError", "fake API told to fail")
        return None

    async def _get(self, request: web.Request) -> web.StreamResponse:
        refused = await self._gate(request, "get")
        if refused is not None:
            return refused
        key = (request.match_info["namespace"], request.match_info["name"])
        encoded = self._encoded.get(key)
        if encoded is None:
            return _status_response(404, "NotFound", f'serviceaccounts "{key[1]}" not found')
        if self.reply_delay:
            await asyncio.sleep(self.reply_delay)
        return web.Response(body=encoded, content_type="application/json")

    async def _list_or_watch(self, request: web.Request) -> web.StreamResponse:
        watching = _query_bool(request, "watch")
        refused = await self._gate(request, "watch" if watching else "list")
        if refused is not None:
            return refused
        if watching:
            return await self._watch(request)
        return self._list(request)

    def _list(self, request: web.Request) -> web.Response:
        limit = int(request.query.get("limit") or 0)
        token = request.query.get("continue")
        if token:
            try:
                decoded = json.loads(base64.urlsafe_b64decode(token))
                snapshot = self._snapshots[decoded["snapshot"]]
                offset = int(decoded["offset"])
            except (ValueError, KeyError, TypeError):
                return _status_response(
                    410, "Expired", "the provided continue parameter is too old"
                )
        else:
            items = [self._encoded[key] for key in sorted(self._encoded)]
            snapshot_id = str(next(self._snapshot_ids))
            snapshot = _Snapshot(self.resource_version, items)
            self._snapshots = {snapshot_id: snapshot}  # one list in progress at a time is enough
            decoded, offset = {"snapshot": snapshot_id}, 0
        end = len(snapshot.items) if limit <= 0 else min(offset + limit, len(snapshot.items))
        metadata: dict[str, Any] = {"resourceVersion": str(snapshot.resource_version)}
        if end < len(snapshot.items):
            next_token = json.dumps({"snapshot": decoded["snapshot"], "offset": end}).encode()
            metadata["continue"] = base64.urlsafe_b64encode(next_token).decode()
            metadata["remainingItemCount"] = len(snapshot.items) - end
        head = json.dumps(
            {"kind": "ServiceAccountList", "apiVersion": "v1", "metadata": metadata}
        ).encode()
        body = head[:-1] + b',"items":[' + b",".join(snapshot.items[offset:end]) + b"]}"
        return web.Response(body=body, content_type="application/json")

    async def _watch(self, request: web.Request) -> web.StreamResponse:
        gone = self.gone_next_watch
        self.gone_next_watch = None
        if gone == "status":
            return _status_response(410, "Expired", "too old resource version")
        bookmarks = _query_bool(request, "allowWatchBookmarks")
        timeout = float(request.query.get("timeoutSeconds") or 0) or None
        since = request.query.get("resourceVersion") or "0"

        # Replay and registration happen with no await between them: no event falls in a gap.
        watcher = _Watcher()
        if gone == "event" or (since != "0" and int(since) < self._oldest_watchable):
            status = status_body(410, "Expired", f"too old resource version: {since}")
            watcher.queue.put_nowait(_line("ERROR", status))
            watcher.queue.put_nowait(None)
        elif since == "0":
            for key in sorted(self._encoded):
                line = b'{"type":"ADDED","object":' + self._encoded[key] + b"}\n"
                watcher.queue.put_nowait(line)
            self._watchers.add(watcher)
        else:
            for version, line in self._history:
                if version > int(since):
                    watcher.queue.put_nowait(line)
            self._watchers.add(watcher)

        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            async with asyncio.timeout(timeout):
                await self._stream(watcher, response, bookmarks)
        except (TimeoutError, ConnectionResetError):
            pass
        finally:
            self._watchers.discard(watcher)
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response

    async def _stream(
        self, watcher: _Watcher, response: web.StreamResponse, bookmarks: bool
    ) -> None:
        interval = self.bookmark_interval if bookmarks else None
        while True:
            try:
                async with asyncio.timeout(interval):
                    line = await watcher.queue.get()
            except TimeoutError:
                line = _line("BOOKMARK", self._bookmark_object())
            if line is None:
                return
            if line.startswith(b'{"type":"BOOKMARK"') and not bookmarks:
                continue
            await response.write(line)
            if self.stream_delay:
                await asyncio.sleep(self.stream_delay)


async def _serve_main(args: argparse.Namespace) -> None:
    from webhook.certificates import create_ca, issue_serving_cert

    directory = Path(args.dir)
    ca = create_ca("fake kube API CA")
    serving = issue_serving_cert(ca, ["localhost", "127.0.0.1"])
    (directory / "ca.crt").write_bytes(ca.cert_pem)
    serving.write(directory / "tls.crt", directory / "tls.key")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(directory / "tls.crt", directory / "tls.key")

    api = FakeKubeAPI(context)
    api.populate(args.count, args.namespaces, args.annotate_every, args.prefix)
    await api.start()
    api.write_kubeconfig(directory / "kubeconfig", directory / "ca.crt")
    print(f"ready {api.url} {len(api)}", flush=True)
    # Serve until stdin closes: the parent ends us by closing the pipe, nothing lingers.
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, _read_until_eof)
    await api.stop()


def _read_until_eof() -> None:
    import sys

    while sys.stdin.read(65536):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True, help="where the CA, certs and kubeconfig go")
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--namespaces", type=int, default=1_000)
    parser.add_argument("--annotate-every", type=int, default=10)
    parser.add_argument("--prefix", default="eks.amazonaws.com")
    asyncio.run(_serve_main(parser.parse_args()))


if __name__ == "__main__":
    main()
