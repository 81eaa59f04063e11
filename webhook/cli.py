"""The `irsa-webhook` command: a thin dispatcher over the command modules in webhook.commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from webhook import __version__
from webhook.commands import apiserver, aws, certs, microk8s, oidc, review, serve
from webhook.errors import CheckFailed, UsageError

COMMAND_MODULES = (serve, review, oidc, microk8s, apiserver, aws, certs)


class _Parser(argparse.ArgumentParser):
    """argparse, but every usage error is one line and exit 2 (argparse prints the whole usage)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="irsa-webhook",
        description="IAM Roles for Service Accounts outside EKS.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subparsers.required = True
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except UsageError as exc:
        print(f"irsa-webhook: {exc}", file=sys.stderr)
        return 2
    except CheckFailed as exc:
        print(f"irsa-webhook: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `irsa-webhook review ... | head` closes the pipe early; that is not an error.
        sys.stderr.close()
        return 0
