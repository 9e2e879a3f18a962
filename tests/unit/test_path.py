"""Attribute paths: builders, text form, parsing; the test oracle apply_path."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from terraform_provider_vmdk.framework.dynamic_value import DynamicValue
from terraform_provider_vmdk.framework.path import (
    AttributeName,
    AttributePath,
    ElementKeyInt,
    ElementKeyString,
)
from terraform_provider_vmdk.framework.types import List, String
from terraform_provider_vmdk.framework.unknowns import UNKNOWN

try:
    from .value_helpers import PathError, apply_path
except ImportError:  # tests/unit is not a package: pytest puts it on sys.path
    from value_helpers import PathError, apply_path


@pytest.mark.parametrize(
    ("path", "text"),
    [
        (AttributePath.root("size_gb"), "size_gb"),
        (AttributePath.root("timeouts").attr("create"), "timeouts.create"),
        (AttributePath.root("disks").key(0).attr("size"), "disks[0].size"),
        (AttributePath.root("tags").key("x"), 'tags["x"]'),
        (AttributePath.root("tags").key('a"b.c[0]'), 'tags["a\\"b.c[0]"]'),
        (AttributePath.empty().index(2), "[2]"),
        (AttributePath.empty(), ""),
        (AttributePath.root("m").key("k").key(1).attr("a").attr("b"), 'm["k"][1].a.b'),
    ],
)
def test_text_form_and_parse(path: AttributePath, text: str) -> None:
    assert str(path) == text
    assert AttributePath.parse(text) == path


def test_steps_are_plain() -> None:
    p = AttributePath.root("disks").key(0).attr("size")
    assert p.steps == (AttributeName("disks"), ElementKeyInt(0), AttributeName("size"))
    assert list(p) == list(p.steps) and len(p) == 3
    assert AttributePath.root("t").key("k").last == ElementKeyString("k")
    assert AttributePath.root("a").then(ElementKeyInt(1)) == AttributePath.root("a").index(1)


def test_display_is_cty_style() -> None:
    assert AttributePath.root("disks").key(0).attr("size").display() == ".disks[0].size"
    assert AttributePath.empty().display() == "(root)"
    assert AttributePath.empty().index(0).display() == "[0]"


def test_relations() -> None:
    p = AttributePath.root("disks").key(0).attr("size")
    assert p.parent == AttributePath.root("disks").key(0)
    assert p.startswith(AttributePath.root("disks"))
    assert not AttributePath.root("disks").startswith(p)
    assert AttributePath.root("disks") + [ElementKeyInt(0)] == p.parent
    assert AttributePath.empty().parent == AttributePath.empty()
    assert not AttributePath.empty() and bool(p)
    assert len({p, AttributePath.parse(".disks[0].size")}) == 1


def test_key_type_checked() -> None:
    with pytest.raises(TypeError):
        AttributePath.root("a").key(True)
    with pytest.raises(TypeError):
        AttributePath.root("a").key(1.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["a.", "a[", "a[x]", 'a["x"', "a..b", "a]", 'a["x"]b'])
def test_parse_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        AttributePath.parse(bad)


VALUE = {
    "name": "v",
    "disks": [{"size": 10}, {"size": UNKNOWN}],
    "tags": {"x": "y"},
    "timeouts": None,
    "later": UNKNOWN,
    "dyn": DynamicValue(List(String), ["a"]),
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", VALUE),
        ("name", "v"),
        ("disks[0].size", 10),
        ("disks[1].size", UNKNOWN),
        ('tags["x"]', "y"),
        ('tags["missing"]', None),
        ("timeouts.create", None),  # through null: null
        ("later.anything[3]", UNKNOWN),  # through unknown: unknown
        ("dyn[0]", "a"),
        ("dyn", ["a"]),
        ("absent", None),
    ],
)
def test_apply(text: str, expected: object) -> None:
    assert apply_path(AttributePath.parse(text), VALUE) == expected


@pytest.mark.parametrize("text", ["disks[2]", "disks.size", "name.x", "tags[0]", "disks[-1]"])
def test_apply_errors(text: str) -> None:
    with pytest.raises(PathError):
        apply_path(AttributePath.parse(text), VALUE)


steps = st.one_of(
    st.text(alphabet="abcdefghij_0123456789-", min_size=1, max_size=6).map(AttributeName),
    st.text(max_size=6).map(ElementKeyString),
    st.integers(min_value=0, max_value=10**6).map(ElementKeyInt),
)


@given(st.lists(steps, max_size=6))
def test_parse_round_trip(step_list: list) -> None:  # type: ignore[type-arg]
    p = AttributePath(tuple(step_list))
    assert AttributePath.parse(str(p)) == p
    assert AttributePath.parse(p.display()) == p if p else True
