"""`irsa-webhook oidc`."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Not built yet: see the open issue."""
