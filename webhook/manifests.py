"""Reading what users hand to `review` (and `--service-accounts`): files or stdin, JSON or YAML,
multi-document streams and `List`s, and the pods hidden inside workload objects.

Every object keeps a label (`file`, `file document 2`, `file document 2 item 3`) so that an error
or a warning names exactly where it came from.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from webhook.errors import UsageError

# libyaml when PyYAML has it: 10,000 ServiceAccounts load in a fraction of the pure-Python time.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

STDIN = "-"

# Where each workload kind keeps its pod template.
POD_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}


@dataclass(frozen=True, slots=True)
class Document:
    """One object read from an input, and where it came from."""

    label: str
    obj: Any


def read_text(path: str) -> str:
    if path == STDIN:
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"{path}: cannot read: {reason}") from None


def _problem_line(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"line {mark.line + 1}: {problem}" if mark is not None else problem


def parse_documents(text: str, name: str) -> list[Document]:
    """All non-empty documents of a JSON or YAML stream, `List`s expanded into their items."""
    stripped = text.lstrip()
    documents: list[Any]
    if stripped.startswith(("{", "[")):
        try:
            documents = [json.loads(text)]
        except json.JSONDecodeError:
            documents = _yaml_documents(text, name)  # YAML flow style also starts with { or [
    else:
        documents = _yaml_documents(text, name)
    result: list[Document] = []
    numbered = len(documents) > 1
    for index, obj in enumerate(documents, start=1):
        if obj is None:
            continue
        label = f"{name} document {index}" if numbered else name
        result.extend(expand_lists(obj, label))
    return result


def _yaml_documents(text: str, name: str) -> list[Any]:
    documents: list[Any] = []
    loader = yaml.load_all(text, Loader=_SAFE_LOADER)
    while True:
        try:
            documents.append(next(loader))
        except StopIteration:
            return documents
        except yaml.YAMLError as exc:
            where = f"{name} document {len(documents) + 1}" if documents else name
            raise UsageError(f"{where}: not valid YAML or JSON ({_problem_line(exc)})") from None


def expand_lists(obj: Any, label: str) -> Iterator[Document]:
    """`kind: List` (and any `*List` with items), as `kubectl get -o yaml` prints, item by item."""
    if (
        isinstance(obj, Mapping)
        and isinstance(obj.get("kind"), str)
        and obj["kind"].endswith("List")
        and isinstance(obj.get("items"), list)
    ):
        for number, item in enumerate(obj["items"], start=1):
            yield from expand_lists(item, f"{label} item {number}")
    else:
        yield Document(label, obj)


def read_documents(paths: list[str]) -> list[Document]:
    documents: list[Document] = []
    for path in paths:
        name = "stdin" if path == STDIN else path
        documents.extend(parse_documents(read_text(path), name))
    return documents


def kind_of(obj: Any) -> str:
    kind = obj.get("kind") if isinstance(obj, Mapping) else None
    return kind if isinstance(kind, str) else ""


def pod_template_path(obj: Mapping[str, Any]) -> tuple[str, ...] | None:
    """Where the pod template sits in a workload, None for anything else."""
    return POD_TEMPLATE_PATHS.get(kind_of(obj))


def dig(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def pod_from_template(template: Mapping[str, Any], generate_name: str) -> dict[str, Any]:
    """The pod a controller would create: no namespace in its metadata, a generateName."""
    metadata = dict(template.get("metadata") or {})
    metadata.pop("namespace", None)
    if generate_name and not metadata.get("name"):
        metadata.setdefault("generateName", generate_name)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": template.get("spec") if isinstance(template.get("spec"), Mapping) else {},
    }


def json_pointer(path: tuple[str, ...]) -> str:
    return "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in path)
