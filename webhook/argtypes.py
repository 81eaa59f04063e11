"""argparse value types shared by the commands: each rejects bad input with one clear line."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

from webhook.goparse import parse_go_bool

Seconds = TypeVar("Seconds", int, float)


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


def _converted(value: str, convert: Callable[[str], Seconds], expected: str) -> Seconds:
    try:
        return convert(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {value!r}") from None


def _positive(seconds: Seconds) -> Seconds:
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"{seconds:g} must be a positive number of seconds")
    return seconds


def whole_seconds(value: str) -> int:
    return _converted(value, int, "whole seconds")


def positive_whole_seconds(value: str) -> int:
    return _positive(whole_seconds(value))


def positive_seconds(value: str) -> float:
    """Seconds above 0 with no upper bound: how long to wait for something slow."""
    return _positive(_converted(value, float, "seconds"))


def seconds_up_to(limit: float) -> Callable[[str], float]:
    """Seconds above 0 and below `limit`: a timeout or a grace period."""

    def seconds(value: str) -> float:
        number = _converted(value, float, "seconds")
        if not 0 < number < limit:
            raise argparse.ArgumentTypeError(
                f"expected seconds between 0 and {limit:g}, got {value}"
            )
        return number

    return seconds
