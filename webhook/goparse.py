"""Go's strconv rules, which the reference webhook applies to annotations and flags.

Parsing exactly as Go does means an annotation the reference ignores is ignored here too.
"""

from __future__ import annotations

import re

_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_go_bool(value: str) -> bool | None:
    """Go's strconv.ParseBool, which the reference applies to annotations: None when invalid."""
    if value in _GO_TRUE:
        return True
    if value in _GO_FALSE:
        return False
    return None


# Go's strconv.ParseInt(s, 10, 64): optional sign, ASCII digits, nothing else.
_GO_INT = re.compile(r"^[+-]?[0-9]+$")
_INT64_MAX = 2**63 - 1


def parse_go_int64(value: str) -> int | None:
    """Go's strconv.ParseInt(value, 10, 64), which the reference uses for expirations."""
    if not _GO_INT.match(value):
        return None
    number = int(value)
    return number if -_INT64_MAX - 1 <= number <= _INT64_MAX else None
