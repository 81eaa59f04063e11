"""The aiohttp applications: `/mutate` (TLS port) and health, readiness and metrics.

The handler's rule: anything the client sent wrong is a 4xx naming what; anything that goes wrong
on our side with a pod is still an allowed answer (unchanged pod, a warning), never a 500 and
never a denial, because the webhook must not be the reason a pod cannot start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from webhook.admission import InvalidReview, PodRequest, admit, parse_review
from webhook.identity import ServiceAccountIdentity
from webhook.mutation import Mutation
from webhook.server.logs import AdmissionLog
from webhook.server.metrics import ServerMetrics
from webhook.serviceaccounts import ServiceAccountSource
from webhook.settings import MutationSettings

log = logging.getLogger("webhook.server")

MAX_BODY_BYTES = 3 * 1024 * 1024  # kube-apiserver caps request bodies at 3 MiB as well
INTERNAL_ERROR_WARNING = (
    "irsa-webhook could not evaluate this pod and admitted it unchanged; see the webhook log"
)
REVIEW_API_VERSION = "admission.k8s.io/v1"


class InFlight:
    """Admission requests being handled, so shutdown can wait for the last one to finish."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.count += 1
        self._idle.clear()

    def leave(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()


IN_FLIGHT = web.AppKey("in_flight", InFlight)


@dataclass(slots=True)
class Admission:
    """Everything the handlers share: where identities come from, the settings and metrics."""

    source: ServiceAccountSource
    settings: MutationSettings
    metrics: ServerMetrics
    log: AdmissionLog = field(default_factory=AdmissionLog)


def _json_bytes(document: dict[str, Any]) -> bytes:
    return orjson.dumps(document)


def _json_response(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="application/json")


def _allowed_unchanged(api_version: str, uid: str, warning: str) -> dict[str, Any]:
    return {
        "apiVersion": api_version or REVIEW_API_VERSION,
        "kind": "AdmissionReview",
        "response": {"uid": uid, "allowed": True, "warnings": [warning]},
    }


def _uid_of(document: Any) -> str | None:
    """The request uid if the body has a usable one, for answering even when parsing failed."""
    try:
        uid = document["request"]["uid"]
    except (KeyError, TypeError):
        return None
    return uid if isinstance(uid, str) and uid else None


class Handlers:
    def __init__(self, admission: Admission) -> None:
        self.admission = admission
        self.metrics = admission.metrics
        self.in_flight = InFlight()

    def _reject(self, status: int, message: str) -> web.Response:
        self.metrics.rejected.labels(str(status)).inc()
        return web.Response(status=status, text=message + "\n")

    async def mutate(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        self.in_flight.enter()
        try:
            return await self._mutate(request, started)
        finally:
            self.in_flight.leave()

    async def _mutate(self, request: web.Request, started: float) -> web.Response:
        # The exact header the API server sends is checked first: parsing it costs ~4 us.
        exact = request.headers.get("Content-Type") == "application/json"
        if not exact and request.content_type != "application/json":
            return self._reject(
                415, f"Content-Type must be application/json, got {request.content_type!r}"
            )
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._reject(413, f"body is larger than {MAX_BODY_BYTES} bytes")
        try:
            document = orjson.loads(body)
        except ValueError as exc:  # includes bodies that are not UTF-8
            return self._reject(400, f"body is not JSON: {exc}")
        try:
            review = parse_review(document)
        except InvalidReview as exc:
            return self._reject(400, f"not an AdmissionReview: {exc}")
        except Exception:
            uid = _uid_of(document)
            if uid is None:
                return self._reject(400, "not an AdmissionReview: no request.uid")
            log.exception("could not read AdmissionReview %s", uid)
            self.metrics.observe("error", False, time.perf_counter() - started)
            api_version = document.get("apiVersion")
            if not isinstance(api_version, str):
                api_version = ""
            answer = _allowed_unchanged(api_version, uid, INTERNAL_ERROR_WARNING)
            return _json_response(_json_bytes(answer))
        return await self._answer(review, started)

    async def _answer(self, review: PodRequest, started: float) -> web.Response:
        identity: ServiceAccountIdentity | None = None
        try:
            if review.wants_mutation:
                identity = await self.admission.source.get(review.namespace, review.service_account)
            response, mutation = admit(review, identity, self.admission.settings)
            body = _json_bytes(response)
        except Exception:
            log.exception(
                "admission failed; pod admitted unchanged",
                extra={"fields": {"uid": review.uid, "namespace": review.namespace}},
            )
            fallback = _allowed_unchanged(review.api_version, review.uid, INTERNAL_ERROR_WARNING)
            body = _json_bytes(fallback)
            mutation = Mutation(outcome="skipped", reason="internal error")
            outcome = "error"
        else:
            outcome = mutation.outcome
        elapsed = time.perf_counter() - started
        self.metrics.observe(outcome, review.dry_run, elapsed)
        fields: dict[str, Any] = {
            "uid": review.uid,
            "namespace": review.namespace,
            "pod": review.pod_name,
            "service_account": review.service_account,
            "result": outcome,
            "duration_ms": round(elapsed * 1000, 3),
            "dry_run": review.dry_run,
        }
        if mutation.reason:
            fields["reason"] = mutation.reason
        self.admission.log(fields)
        return _json_response(body)

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(self, request: web.Request) -> web.Response:
        if self.admission.source.is_ready():
            return web.Response(text="ok\n")
        return web.Response(status=503, text="ServiceAccounts not listed yet\n")

    async def metrics_page(self, request: web.Request) -> web.Response:
        body, content_type = self.metrics.render()
        return web.Response(body=body, headers={"Content-Type": content_type})


def make_webhook_app(admission: Admission, max_body_bytes: int = MAX_BODY_BYTES) -> web.Application:
    """The TLS application the API server calls; health endpoints too, for probes over TLS."""
    handlers = Handlers(admission)
    admission.metrics.in_flight.set_function(lambda: handlers.in_flight.count)
    app = web.Application(client_max_size=max_body_bytes)
    app[IN_FLIGHT] = handlers.in_flight
    app.router.add_post("/mutate", handlers.mutate)
    app.router.add_get("/healthz", handlers.healthz)
    app.router.add_get("/readyz", handlers.readyz)
    return app


def make_metrics_app(admission: Admission) -> web.Application:
    """Plain HTTP for Prometheus and kubelet probes, as the reference serves on --metrics-port."""
    handlers = Handlers(admission)
    app = web.Application()
    app.router.add_get("/metrics", handlers.metrics_page)
    app.router.add_get("/healthz", handlers.healthz)
    app.router.add_get("/readyz", handlers.readyz)
    return app
