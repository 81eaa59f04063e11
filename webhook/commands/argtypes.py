"""argparse value types shared by the commands: each rejects bad input with one clear line."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from webhook.goparse import parse_go_bool


def port(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {value!r}") from None
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"port {number} is out of range 0-65535")
    return number


def go_bool(value: str) -> bool:
    """A boolean the way Go's flag package reads one, so the reference's args keep working."""
    parsed = parse_go_bool(value)
    if parsed is None:
        raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")
    return parsed


def whole_seconds(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole seconds, got {value!r}") from None


def positive_whole_seconds(value: str) -> int:
    seconds = whole_seconds(value)
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{seconds} must be a positive number of seconds")
    return seconds


def _float_seconds(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {value!r}") from None


def positive_seconds(value: str) -> float:
    """Seconds above 0 with no upper bound: how long to wait for something slow."""
    number = _float_seconds(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"expected more than 0 seconds, got {value}")
    return number


def seconds_up_to(limit: float) -> Callable[[str], float]:
    """Seconds above 0 and below `limit`: a timeout or a grace period."""

    def seconds(value: str) -> float:
        number = _float_seconds(value)
        if not 0 < number < limit:
            raise argparse.ArgumentTypeError(
                f"expected seconds between 0 and {limit:g}, got {value}"
            )
        return number

    return seconds
