"""Applying a JSON Patch (RFC 6902) to show what a webhook's answer does to an object.

`review` needs this at run time (the `jsonpatch` library is a test tool only, and it is the
independent implementation the tests check this one against). The webhooks we talk to answer with
add, remove and replace; test, move and copy are here for completeness.
"""

from __future__ import annotations

import copy
from typing import Any


class PatchError(ValueError):
    """The patch does not apply to the object."""


def _tokens(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f"bad JSON pointer {pointer!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in pointer[1:].split("/")]


def _index(container: list[Any], token: str, adding: bool) -> int:
    if adding and token == "-":
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise PatchError(f"bad array index {token!r}")
    index = int(token)
    if index > len(container) or (index == len(container) and not adding):
        raise PatchError(f"array index {index} out of range")
    return index


def _parent(doc: Any, tokens: list[str]) -> Any:
    for token in tokens[:-1]:
        if isinstance(doc, dict) and token in doc:
            doc = doc[token]
        elif isinstance(doc, list):
            doc = doc[_index(doc, token, adding=False)]
        else:
            raise PatchError(f"path component {token!r} not found")
    return doc


def _locate(doc: Any, pointer: str) -> tuple[Any, str | int]:
    """The container holding an existing member, and the member's key or index."""
    tokens = _tokens(pointer)
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        return parent, last
    if isinstance(parent, list):
        return parent, _index(parent, last, adding=False)
    raise PatchError(f"{pointer} not found")


def _get(doc: Any, pointer: str) -> Any:
    if not _tokens(pointer):
        return doc
    parent, key = _locate(doc, pointer)
    return parent[key]


def _remove(doc: Any, pointer: str) -> Any:
    if not _tokens(pointer):
        raise PatchError("cannot remove the whole document")
    parent, key = _locate(doc, pointer)
    return parent.pop(key)


def _add(doc: Any, pointer: str, value: Any) -> Any:
    tokens = _tokens(pointer)
    if not tokens:
        return value
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, adding=True), value)
    else:
        raise PatchError(f"cannot add {pointer}: parent is not an object or array")
    return doc


def _replace(doc: Any, pointer: str, value: Any) -> Any:
    if not _tokens(pointer):
        return value
    parent, key = _locate(doc, pointer)
    parent[key] = value
    return doc


def apply_patch(document: Any, patch: list[Any]) -> Any:
    """A patched copy of document; the input is left untouched."""
    doc = copy.deepcopy(document)
    if not isinstance(patch, list):
        raise PatchError("a JSON Patch is a list of operations")
    for op in patch:
        if not isinstance(op, dict) or not isinstance(op.get("path"), str):
            raise PatchError(f"bad operation {op!r}")
        kind, path = op.get("op"), op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f"{kind} {path} has no value")
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "replace":
            doc = _replace(doc, path, copy.deepcopy(op["value"]))
        elif kind == "test":
            if _get(doc, path) != op["value"]:
                raise PatchError(f"test {path} failed")
        elif kind in ("move", "copy"):
            source = op.get("from")
            if not isinstance(source, str):
                raise PatchError(f"{kind} {path} has no from")
            value = _remove(doc, source) if kind == "move" else copy.deepcopy(_get(doc, source))
            doc = _add(doc, path, value)
        else:
            raise PatchError(f"unknown operation {kind!r}")
    return doc
