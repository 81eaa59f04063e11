"""`irsa-webhook microk8s configure|restore`: point MicroK8s's kube-apiserver at our issuer."""

from __future__ import annotations

import argparse
from pathlib import Path

from webhook import argtypes
from webhook.apiserver.files import restore_newest
from webhook.apiserver.microk8s import DEFAULT_SNAP_DATA, ConfigureSettings, configure
from webhook.apiserver.restart import RestartTools, restart_or_hint
from webhook.commands.apiserver import add_issuer_flags, audiences_from


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "microk8s",
        help="configure MicroK8s's API server for the issuer (reversible)",
        description="Edit MicroK8s's kube-apiserver arguments file for an OIDC issuer.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    conf = actions.add_parser(
        "configure",
        help="set issuer, keys and audiences; keeps tokens already issued valid",
        description=(
            "Make ISSUER the signing issuer of MicroK8s's API server. The previous issuer and "
            "keys stay accepted (unless --drop-previous), so running pods keep working."
        ),
    )
    add_issuer_flags(conf)
    _add_location_flags(conf)
    conf.add_argument(
        "--key-dir",
        type=Path,
        help="where the key copies go (default: SNAP_DATA/certs/irsa); the flags point there",
    )
    conf.add_argument(
        "--drop-previous",
        action="store_true",
        help="comment out the previous issuer and keys: tokens issued before stop validating",
    )
    conf.add_argument("--dry-run", action="store_true", help="print the change, change nothing")
    _add_restart_flags(conf)
    conf.set_defaults(run=run_configure)

    rest = actions.add_parser(
        "restore",
        help="put back the newest backup made by configure",
        description="Put back the newest backup that `microk8s configure` made of the file.",
    )
    _add_location_flags(rest)
    _add_restart_flags(rest)
    rest.set_defaults(run=run_restore)


def _add_location_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--snap-data",
        type=Path,
        default=DEFAULT_SNAP_DATA,
        help="MicroK8s's data folder, what ${SNAP_DATA} means in the file (default: %(default)s)",
    )
    parser.add_argument(
        "--args-file",
        type=Path,
        help="kube-apiserver arguments file (default: SNAP_DATA/args/kube-apiserver)",
    )


def _add_restart_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--restart",
        action="store_true",
        help="run `microk8s stop` and `microk8s start`, then wait for the API server",
    )
    parser.add_argument(
        "--wait-timeout",
        type=argtypes.positive_seconds,
        default=300.0,
        metavar="SECONDS",
        help="how long --restart waits for the API server (default: %(default)s)",
    )


def _args_file(args: argparse.Namespace) -> Path:
    return args.args_file or args.snap_data / "args" / "kube-apiserver"


def run_configure(args: argparse.Namespace) -> int:
    settings = ConfigureSettings(
        issuer=args.issuer,
        public_key=args.public_key,
        signing_key=args.signing_key,
        args_file=_args_file(args),
        key_dir=args.key_dir or args.snap_data / "certs" / "irsa",
        snap_data=args.snap_data,
        extra_audiences=audiences_from(args.api_audiences),
        drop_previous=args.drop_previous,
        dry_run=args.dry_run,
        restart=args.restart,
        wait_timeout=args.wait_timeout,
    )
    return configure(settings, print)


def run_restore(args: argparse.Namespace) -> int:
    path = _args_file(args)
    tools = RestartTools.find() if args.restart else None
    restored_from, saved = restore_newest(path)
    if saved is None:
        print(f"{path} already matches the newest backup {restored_from}: nothing to do")
        return 0
    print(f"restored {path} from {restored_from}")
    print(f"the replaced file is kept as {saved}")
    restart_or_hint(tools, args.wait_timeout, print)
    return 0
