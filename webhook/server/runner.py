"""Running the two listeners: the TLS webhook port and the plain-HTTP metrics port.

Shutdown order matters for "no request lost": stop accepting on both ports, let requests in
flight finish (bounded by the grace period), then run the cleanup hooks (the cache stops last).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
from collections.abc import Callable

from aiohttp import web

from webhook.errors import UsageError
from webhook.server.app import IN_FLIGHT
from webhook.server.tls import ReloadingTLS

log = logging.getLogger("webhook.server")

DEFAULT_GRACE_SECONDS = 10.0  # as the reference; well inside Kubernetes' default 30 s


class WebhookServer:
    def __init__(
        self,
        webhook_app: web.Application,
        metrics_app: web.Application,
        tls: ReloadingTLS,
        *,
        host: str = "0.0.0.0",
        port: int = 8443,
        metrics_port: int = 9999,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
    ) -> None:
        self.tls = tls
        self.host = host
        self._ports = (port, metrics_port)
        # access_log off: /mutate writes its own structured line, probes need none.
        self._webhook = web.AppRunner(webhook_app, access_log=None, shutdown_timeout=grace_seconds)
        self._metrics = web.AppRunner(metrics_app, access_log=None, shutdown_timeout=grace_seconds)
        self._in_flight = webhook_app[IN_FLIGHT]
        self._grace_seconds = grace_seconds
        self._listeners: list[asyncio.Server] = []
        self._watch: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        return int(self._listeners[0].sockets[0].getsockname()[1])

    @property
    def metrics_port(self) -> int:
        return int(self._listeners[1].sockets[0].getsockname()[1])

    async def _listen(
        self, runner: web.AppRunner, port: int, ssl_context: ssl.SSLContext | None
    ) -> None:
        assert runner.server is not None
        loop = asyncio.get_running_loop()
        try:
            listener = await loop.create_server(runner.server, self.host, port, ssl=ssl_context)
        except OSError as exc:
            raise UsageError(
                f"cannot listen on {self.host}:{port}: {exc.strerror or exc}"
            ) from None
        self._listeners.append(listener)

    async def start(self) -> None:
        """Startup hooks first (they start the ServiceAccount source), then listen."""
        await self._webhook.setup()
        await self._metrics.setup()
        try:
            await self._listen(self._webhook, self._ports[0], self.tls.context)
            await self._listen(self._metrics, self._ports[1], None)
        except BaseException:
            await self.stop()
            raise
        self._watch = asyncio.create_task(self.tls.watch())
        log.info(
            "listening",
            extra={
                "fields": {
                    "webhook": f"https://{self.host}:{self.port}/mutate",
                    "metrics": f"http://{self.host}:{self.metrics_port}/metrics",
                }
            },
        )

    async def _stop_accepting(self) -> None:
        """Close the listeners without stranding a connection accepted a moment before.

        asyncio sets up an accepted connection one loop pass after accepting it; a listener
        closed in between leaves that connection open and unserved (its TLS handshake hangs
        until the client times out). So: stop polling the listening sockets, let the pending
        set-ups run, then close.
        """
        loop = asyncio.get_running_loop()
        for listener in self._listeners:
            for sock in listener.sockets:
                loop.remove_reader(sock.fileno())
        for _ in range(3):
            await asyncio.sleep(0)
        for listener in self._listeners:
            listener.close()
        self._listeners.clear()

    async def stop(self) -> None:
        """Stop accepting, drain, then clean up.

        aiohttp's own cleanup stops reading from every connection at once, which would strand a
        request whose body is still arriving; so first only the listeners close, and requests
        already being handled (body upload included) finish within the grace period.
        """
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        if self._listeners:
            await self._stop_accepting()
            log.info("stopped accepting", extra={"fields": {"in_flight": self._in_flight.count}})
        try:
            await asyncio.wait_for(self._in_flight.wait_idle(), self._grace_seconds)
        except TimeoutError:
            log.warning(
                "grace period over with requests in flight",
                extra={"fields": {"in_flight": self._in_flight.count}},
            )
        await asyncio.gather(self._webhook.cleanup(), self._metrics.cleanup())


async def serve_until_signalled(
    server: WebhookServer, on_started: Callable[[WebhookServer], None] | None = None
) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    if on_started is not None:
        on_started(server)
    try:
        await stop.wait()
        log.info("signal received: finishing requests in flight, then exiting")
    finally:
        await server.stop()
    log.info("stopped")
