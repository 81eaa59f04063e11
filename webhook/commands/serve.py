"""`irsa-webhook serve`: the admission webhook over TLS, with health, readiness and metrics."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from webhook import argtypes, dev
from webhook.errors import UsageError
from webhook.server.assembly import build_server
from webhook.server.envflags import apply_env_defaults, raise_for_bad_env
from webhook.server.logs import LOG_FORMATS, LOG_LEVELS, AdmissionLog, configure_logging
from webhook.server.runner import DEFAULT_GRACE_SECONDS, WebhookServer, serve_until_signalled
from webhook.server.tls import MIN_VERSIONS
from webhook.settings import add_mutation_flags

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
        ("--in-cluster", go_bool_flag),
        ("--namespace", {}),
        ("--service-name", {}),
        ("--tls-secret", {}),
        ("--logtostderr", go_bool_flag),
        ("--v", {"metavar": "LEVEL"}),  # klog's verbosity
        ("--service-account-lookup-grace-period", {"metavar": "DURATION"}),
        ("--enable-debugging-handlers", go_bool_flag),
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


def _print_dev_follow_up(server: WebhookServer) -> None:
    print(
        f"irsa-webhook dev server on https://{dev.DEV_HOST}:{server.port}/mutate "
        f"(CA {dev.DEV_CERT_DIR / 'ca.crt'}). In another shell, run:\n\n"
        f"  {dev.follow_up_command(server.port)}\n",
        flush=True,
    )
