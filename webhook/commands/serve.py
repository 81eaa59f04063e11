"""`irsa-webhook serve`: the admission webhook over TLS, with health, readiness and metrics."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import yaml
from aiohttp import web

from webhook import dev
from webhook.commands import argtypes
from webhook.errors import UsageError
from webhook.server.app import Admission, make_metrics_app, make_webhook_app
from webhook.server.envflags import apply_env_defaults, raise_for_bad_env
from webhook.server.logs import LOG_FORMATS, LOG_LEVELS, AdmissionLog, configure_logging
from webhook.server.metrics import ServerMetrics
from webhook.server.runner import DEFAULT_GRACE_SECONDS, WebhookServer, serve_until_signalled
from webhook.server.tls import MIN_VERSIONS, ReloadingTLS, TLSSettings, openssl_ciphers
from webhook.serviceaccounts import ServiceAccountSource
from webhook.settings import add_mutation_flags, mutation_settings_from_args

log = logging.getLogger("webhook.serve")

DEFAULT_CERT_DIR = Path("/etc/webhook/certs")
SECONDS = argtypes.seconds_up_to(3600)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the admission webhook",
        description="Serve the pod identity webhook: POST /mutate over TLS, /healthz and /readyz "
        "on both ports, /metrics on the plain-HTTP metrics port. Every flag can also be set with "
        "an IRSA_WEBHOOK_<FLAG> environment variable (a flag on the command line wins).",
    )
    net = parser.add_argument_group("listening")
    net.add_argument(
        "--port", type=argtypes.port, default=8443, help="TLS port (default %(default)s)"
    )
    net.add_argument(
        "--metrics-port",
        type=argtypes.port,
        default=9999,
        help="plain-HTTP port for /metrics, /healthz, /readyz (default %(default)s)",
    )
    net.add_argument(
        "--bind-address",
        "--host",
        dest="bind_address",
        default="0.0.0.0",
        help="address to listen on (default %(default)s; --dev forces 127.0.0.1)",
    )
    net.add_argument(
        "--shutdown-grace-period",
        type=SECONDS,
        default=DEFAULT_GRACE_SECONDS,
        help="seconds to finish requests in flight after SIGTERM (default %(default)s)",
    )
    tls = parser.add_argument_group("TLS (files are re-read when they change on disk)")
    tls.add_argument(
        "--tls-cert",
        type=Path,
        default=DEFAULT_CERT_DIR / "tls.crt",
        help="certificate chain (default %(default)s)",
    )
    tls.add_argument(
        "--tls-key",
        type=Path,
        default=DEFAULT_CERT_DIR / "tls.key",
        help="private key (default %(default)s)",
    )
    tls.add_argument(
        "--tls-min-version",
        choices=sorted(MIN_VERSIONS),
        default="1.2",
        help="lowest TLS version accepted (default %(default)s)",
    )
    tls.add_argument(
        "--tls-cipher-suites",
        default="",
        metavar="NAMES",
        help="comma-separated Go cipher suite names for TLS 1.2 (default: OpenSSL's); TLS 1.3 "
        "suites are accepted but cannot be restricted in Python and stay all enabled",
    )
    sas = parser.add_argument_group("ServiceAccounts")
    sas.add_argument(
        "--kubeconfig",
        help="kubeconfig of the API server (default: in-cluster config, else $KUBECONFIG or "
        "~/.kube/config)",
    )
    sas.add_argument("--kube-api", default="", help="API server URL, overriding the kubeconfig's")
    sas.add_argument(
        "--service-accounts",
        action="append",
        type=Path,
        metavar="FILE",
        help="read ServiceAccounts from this YAML/JSON file instead of the API (repeatable)",
    )
    sas.add_argument(
        "--lookup-timeout",
        type=SECONDS,
        default=1.0,
        help="bound on a direct API lookup of a ServiceAccount the cache has not seen "
        "(seconds, default %(default)s)",
    )
    add_mutation_flags(parser)
    logs = parser.add_argument_group("logging")
    logs.add_argument(
        "--log-level", choices=LOG_LEVELS, default="info", help="(default %(default)s)"
    )
    logs.add_argument(
        "--log-format", choices=LOG_FORMATS, default="text", help="(default %(default)s)"
    )
    parser.add_argument(
        "--dev",
        action="store_true",
        help=f"no cluster: dev certificates under {dev.DEV_CERT_DIR}/, ServiceAccounts from "
        f"{dev.DEV_SERVICE_ACCOUNTS}, listen on {dev.DEV_HOST}",
    )
    _add_reference_compat_flags(parser)
    apply_env_defaults(parser)
    parser.set_defaults(run=run)


def _add_reference_compat_flags(parser: argparse.ArgumentParser) -> None:
    """Flags of the reference webhook that mean nothing here, accepted so its args work as-is.

    Each is harmless to ignore: the serving certificate always comes from --tls-cert/--tls-key
    (the reference's --in-cluster=false mode, the one its cert-manager manifests use), logs always
    go to stderr, and a ServiceAccount missing from the cache is always looked up directly.
    """
    parser.epilog = (
        "Accepted for compatibility with the reference webhook and ignored: --in-cluster, "
        "--namespace, --service-name, --tls-secret, --logtostderr, -v/--v, "
        "--service-account-lookup-grace-period, --enable-debugging-handlers."
    )
    group = parser.add_argument_group("reference compatibility")
    # Go bool flags: bare, or =true|false.
    go_bool_flag = {"type": argtypes.go_bool, "nargs": "?", "const": True, "metavar": "true|false"}
    for name, kwargs in (
        (
            "--in-cluster",
            go_bool_flag,
        ),
        ("--namespace", {}),
        ("--service-name", {}),
        ("--tls-secret", {}),
        (
            "--logtostderr",
            go_bool_flag,
        ),
        ("--v", {"metavar": "LEVEL"}),  # klog's verbosity
        ("--service-account-lookup-grace-period", {"metavar": "DURATION"}),
        (
            "--enable-debugging-handlers",
            go_bool_flag,
        ),
    ):
        names = (name, "-v") if name == "--v" else (name,)
        group.add_argument(*names, help=argparse.SUPPRESS, **kwargs)


def run(args: argparse.Namespace) -> int:
    raise_for_bad_env(args)
    log_handler = configure_logging(args.log_level, args.log_format)
    if args.dev:
        _apply_dev_defaults(args)
    asyncio.run(_serve(args, AdmissionLog(log_handler, args.log_format)))
    return 0


def _apply_dev_defaults(args: argparse.Namespace) -> None:
    args.bind_address = dev.DEV_HOST
    certs = dev.ensure_dev_certs()
    args.tls_cert, args.tls_key = certs.cert_file, certs.key_file
    if not args.service_accounts:
        if not dev.DEV_SERVICE_ACCOUNTS.is_file():
            raise UsageError(
                f"--dev reads {dev.DEV_SERVICE_ACCOUNTS} from the working directory: run it from "
                "the repository root, or pass --service-accounts FILE"
            )
        args.service_accounts = [dev.DEV_SERVICE_ACCOUNTS]


async def _serve(args: argparse.Namespace, admission_log: AdmissionLog) -> None:
    server = await build_server(args, admission_log)
    on_started = _print_dev_follow_up if args.dev else None
    await serve_until_signalled(server, on_started)


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


def _print_dev_follow_up(server: WebhookServer) -> None:
    print(
        f"irsa-webhook dev server on https://{dev.DEV_HOST}:{server.port}/mutate "
        f"(CA {dev.DEV_CERT_DIR / 'ca.crt'}). In another shell, run:\n\n"
        f"  {dev.follow_up_command(server.port)}\n",
        flush=True,
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

    configuration = await _kube_configuration(args.kubeconfig)
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


async def _kube_configuration(kubeconfig: str | None) -> object:
    """--kubeconfig, else in-cluster, else $KUBECONFIG or ~/.kube/config, like kubectl."""
    from kubernetes_asyncio import client, config

    configuration = client.Configuration()
    in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    default_file = os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    try:
        if kubeconfig:
            await config.load_kube_config(
                config_file=kubeconfig, client_configuration=configuration
            )
        elif in_cluster:
            config.load_incluster_config(client_configuration=configuration)
        elif any(Path(path).is_file() for path in default_file.split(os.pathsep)):
            await config.load_kube_config(
                config_file=default_file, client_configuration=configuration
            )
        else:
            raise UsageError(
                "no Kubernetes API to read ServiceAccounts from: pass --kubeconfig, run in a "
                "cluster, or pass --service-accounts FILE (or --dev)"
            )
    except (
        config.ConfigException,
        OSError,
        ValueError,
        TypeError,
        KeyError,
        yaml.YAMLError,
    ) as exc:
        detail = " ".join(str(exc).split())  # YAML errors span lines; the message is one
        where = kubeconfig or ("the in-cluster config" if in_cluster else default_file)
        raise UsageError(f"cannot load the Kubernetes configuration {where}: {detail}") from None
    return configuration
