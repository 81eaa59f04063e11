"""The JSON Patch applier `review` uses to show an answer, checked against `jsonpatch`."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webhook.patching import PatchError, apply_patch

DOC = {
    "spec": {
        "containers": [{"name": "a", "env": [{"name": "X", "value": "1"}]}],
        "a/b": {"c~d": 1},
    }
}


@pytest.mark.parametrize(
    "patch",
    [
        [{"op": "add", "path": "/spec/volumes", "value": [{"name": "v"}]}],
        [{"op": "add", "path": "/spec/containers/0", "value": {"name": "first"}}],
        [{"op": "add", "path": "/spec/containers/-", "value": {"name": "last"}}],
        [{"op": "add", "path": "/spec/containers", "value": []}],
        [{"op": "add", "path": "/spec/containers/0/env/1", "value": {"name": "Y"}}],
        [{"op": "add", "path": "/spec/a~1b/c~0d", "value": 2}],
        [{"op": "remove", "path": "/spec/containers/0/env/0"}],
        [{"op": "replace", "path": "/spec/containers/0/name", "value": "b"}],
        [{"op": "test", "path": "/spec/containers/0/name", "value": "a"}],
        [{"op": "move", "from": "/spec/containers", "path": "/spec/moved"}],
        [{"op": "copy", "from": "/spec/containers/0", "path": "/spec/containers/-"}],
        [{"op": "replace", "path": "", "value": {"whole": True}}],
    ],
)
def test_agrees_with_jsonpatch_and_leaves_the_input_alone(patch: list[dict[str, Any]]) -> None:
    before = copy.deepcopy(DOC)
    assert apply_patch(DOC, patch) == jsonpatch.apply_patch(DOC, patch)
    assert before == DOC


@pytest.mark.parametrize(
    "patch",
    [
        [{"op": "add", "path": "/nope/deeper", "value": 1}],
        [{"op": "add", "path": "/spec/containers/5", "value": 1}],
        [{"op": "add", "path": "/spec/containers/01", "value": 1}],
        [{"op": "remove", "path": "/spec/missing"}],
        [{"op": "replace", "path": "/spec/missing", "value": 1}],
        [{"op": "test", "path": "/spec/containers/0/name", "value": "z"}],
        [{"op": "add", "path": "/spec/x"}],
        [{"op": "frobnicate", "path": "/spec"}],
        [{"op": "add", "path": "spec", "value": 1}],
        ["not an op"],
    ],
)
def test_bad_patches_raise_patch_error(patch: list[Any]) -> None:
    with pytest.raises(PatchError):
        apply_patch(DOC, patch)


keys = st.sampled_from(["a", "b", "c/d", "e~f"])
documents = st.recursive(
    st.integers() | st.text(max_size=3),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=3),
    max_leaves=10,
)


def _pointer(parts: list[str]) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


@st.composite
def add_ops(draw: st.DrawFn) -> tuple[Any, list[dict[str, Any]]]:
    doc = draw(st.dictionaries(keys, documents, min_size=1, max_size=3))
    parts: list[str] = []
    node: Any = doc
    while isinstance(node, (dict, list)) and node and draw(st.booleans()):
        if isinstance(node, dict):
            key = draw(st.sampled_from(sorted(node)))
            parts.append(key)
            node = node[key]
        else:
            index = draw(st.integers(0, len(node) - 1))
            parts.append(str(index))
            node = node[index]
    if isinstance(node, list):
        parts.append(draw(st.sampled_from(["-", str(len(node)), "0"])))
    elif isinstance(node, dict):
        parts.append(draw(keys))
    else:
        return doc, [{"op": "replace", "path": _pointer(parts), "value": draw(documents)}]
    return doc, [{"op": "add", "path": _pointer(parts), "value": draw(documents)}]


@settings(max_examples=200, deadline=None)
@given(add_ops())
def test_generated_adds_agree_with_jsonpatch(case: tuple[Any, list[dict[str, Any]]]) -> None:
    doc, patch = case
    assert apply_patch(doc, patch) == jsonpatch.apply_patch(doc, patch)
