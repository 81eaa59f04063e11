"""The whole server from parsed `serve` flags: TLS, the ServiceAccount source, apps and metrics.

Kept apart from the command so tests can build the real server in process and start it.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from webhook.kubeconfig import load_kube_configuration
from webhook.server.app import Admission, make_metrics_app, make_webhook_app
from webhook.server.logs import AdmissionLog
from webhook.server.metrics import ServerMetrics
from webhook.server.runner import WebhookServer
from webhook.server.tls import ReloadingTLS, TLSSettings, openssl_ciphers
from webhook.serviceaccounts import ServiceAccountSource
from webhook.settings import mutation_settings_from_args


async def build_server(
    args: argparse.Namespace, admission_log: AdmissionLog | None = None
) -> WebhookServer:
    """The whole server from parsed `serve` flags, not started (tests start it in process)."""
    settings = mutation_settings_from_args(args)
    tls = ReloadingTLS(
        TLSSettings(
            cert_file=args.tls_cert,
            key_file=args.tls_key,
            min_version=args.tls_min_version,
            ciphers=openssl_ciphers(args.tls_cipher_suites),
        )
    )
    source, lifecycle = await _source(args)
    metrics = ServerMetrics(source, tls.seconds_until_expiry)
    admission = Admission(source, settings, metrics, admission_log or AdmissionLog())
    webhook_app = make_webhook_app(admission)
    if lifecycle is not None:
        webhook_app.cleanup_ctx.append(lifecycle)
    return WebhookServer(
        webhook_app,
        make_metrics_app(admission),
        tls,
        host=args.bind_address,
        port=args.port,
        metrics_port=args.metrics_port,
        grace_seconds=args.shutdown_grace_period,
    )


Lifecycle = Callable[[web.Application], AsyncIterator[None]]


async def _source(args: argparse.Namespace) -> tuple[ServiceAccountSource, Lifecycle | None]:
    if args.service_accounts:
        from webhook.serviceaccounts.offline import OfflineServiceAccounts

        paths = [str(path) for path in args.service_accounts]
        return OfflineServiceAccounts.from_files(paths, args.annotation_prefix), None
    return await _api_cache(args)


async def _api_cache(args: argparse.Namespace) -> tuple[ServiceAccountSource, Lifecycle]:
    from kubernetes_asyncio import client

    from webhook.serviceaccounts.cache import ServiceAccountCache

    configuration = await load_kube_configuration(args.kubeconfig)
    if args.kube_api:
        configuration.host = args.kube_api
    api_client = client.ApiClient(configuration)
    cache = ServiceAccountCache(
        api_client, args.annotation_prefix, lookup_timeout=args.lookup_timeout
    )

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await cache.start()
        try:
            yield
        finally:
            await cache.stop()
            await api_client.close()

    return cache, lifecycle
