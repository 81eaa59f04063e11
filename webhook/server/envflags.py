"""Flags from environment variables, for Deployments that configure by env.

Each long flag `--some-flag` of a parser is also read from `IRSA_WEBHOOK_SOME_FLAG`. The env value
becomes the flag's default, so a flag on the command line still wins. A bad env value does not
break parser construction (other commands must still work): it is parked as the default and
reported as one line when the command runs.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from webhook.errors import UsageError
from webhook.goparse import parse_go_bool

ENV_PREFIX = "IRSA_WEBHOOK_"


@dataclass(frozen=True, slots=True)
class BadEnvValue:
    message: str


def env_name(action: argparse.Action) -> str:
    long_name = next(o for o in action.option_strings if o.startswith("--"))
    return ENV_PREFIX + long_name[2:].upper().replace("-", "_")


def _convert_one(action: argparse.Action, raw: str) -> Any:
    value = action.type(raw) if callable(action.type) else raw
    if action.choices is not None and value not in action.choices:
        raise ValueError(f"expected one of {', '.join(map(str, action.choices))}")
    return value


def _convert(action: argparse.Action, raw: str) -> Any:
    if isinstance(action, argparse._StoreTrueAction):
        parsed = parse_go_bool(raw)
        if parsed is None:
            raise ValueError("expected true or false")
        return parsed
    if isinstance(action, argparse._AppendAction):
        return [_convert_one(action, item.strip()) for item in raw.split(",") if item.strip()]
    return _convert_one(action, raw)


def apply_env_defaults(
    parser: argparse.ArgumentParser, environ: Mapping[str, str] | None = None
) -> None:
    """Make every long flag of `parser` readable from its env variable (named in --help)."""
    environ = os.environ if environ is None else environ
    for action in parser._actions:
        if action.dest in ("help", argparse.SUPPRESS) or not any(
            o.startswith("--") for o in action.option_strings
        ):
            continue
        name = env_name(action)
        if action.help and action.help is not argparse.SUPPRESS:
            action.help += f" [env {name}]"
        raw = environ.get(name)
        if raw is None:
            continue
        try:
            value = _convert(action, raw)
        except (argparse.ArgumentTypeError, ValueError, TypeError) as exc:
            value = BadEnvValue(f"{name}={raw!r}: {exc}")
        parser.set_defaults(**{action.dest: value})


def raise_for_bad_env(args: argparse.Namespace) -> None:
    """The first env value that did not parse and no flag overrode, as a UsageError."""
    for value in vars(args).values():
        if isinstance(value, BadEnvValue):
            raise UsageError(value.message)
