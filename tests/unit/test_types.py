"""cty types: JSON form, parsing, equality and hashing."""

from __future__ import annotations

import copy
import pickle

import pytest
from hypothesis import given

from terraform_provider_vmdk.framework.types import (
    Bool,
    CtyType,
    DynamicPseudoType,
    List,
    Map,
    Number,
    Object,
    Set,
    String,
    Tuple,
    type_from_json,
)

try:
    from .test_values_strategies import cty_types
except ImportError:  # tests/unit is not a package: pytest puts it on sys.path
    from test_values_strategies import cty_types


@pytest.mark.parametrize(
    ("ty", "text"),
    [
        (String, b'"string"'),
        (Number, b'"number"'),
        (Bool, b'"bool"'),
        (DynamicPseudoType, b'"dynamic"'),
        (List(String), b'["list","string"]'),
        (Set(Number), b'["set","number"]'),
        (Map(Bool), b'["map","bool"]'),
        (Tuple([String, Number]), b'["tuple",["string","number"]]'),
        (Tuple([]), b'["tuple",[]]'),
        (Object({"b": Number, "a": String}), b'["object",{"a":"string","b":"number"}]'),
        (Object({"a": String, "b": Number}, optional={"b"}), b'["object",{"a":"string","b":"number"},["b"]]'),
        (Object({}), b'["object",{}]'),
        (List(Object({"size": Number, "tags": Map(String)})),
         b'["list",["object",{"size":"number","tags":["map","string"]}]]'),
    ],
)
def test_json_bytes_form(ty: CtyType, text: bytes) -> None:
    assert ty.to_json_bytes() == text
    assert CtyType.from_json_bytes(text) == ty
    assert CtyType.from_json(text) == ty


def test_to_json_is_jsonable_structure() -> None:
    assert Object({"a": List(String)}, optional=["a"]).to_json() == ["object", {"a": ["list", "string"]}, ["a"]]
    assert type_from_json(["map", ["set", "dynamic"]]) == Map(Set(DynamicPseudoType))


def test_equality_and_hashing() -> None:
    assert List(String) == List(String)
    assert List(String) != Set(String)
    assert List(String) != List(Number)
    assert Object({"a": String}) != Object({"a": String}, optional={"a"})
    assert Object({"a": String, "b": Bool}) == Object({"b": Bool, "a": String})
    assert len({List(String), List(String), Map(String), Tuple([String]), Tuple([String])}) == 3
    assert String != "string"


def test_immutable_and_copyable() -> None:
    t = Object({"a": List(String)})
    with pytest.raises(AttributeError):
        t.optional = frozenset()  # type: ignore[misc]
    with pytest.raises(TypeError):
        t.attributes["b"] = String  # type: ignore[index]
    assert copy.deepcopy(t) is t
    assert pickle.loads(pickle.dumps(t)) == t


@pytest.mark.parametrize(
    "bad",
    [
        '"str"',
        '["list"]',
        '["list","string","x"]',
        '["tuple","string"]',
        '["object",["a"]]',
        '["object",{"a":"string"},["b"]]',
        '["object",{"a":"string"},"a"]',
        '["frob","string"]',
        '42',
        '[]',
        'not json',
    ],
)
def test_invalid_type_json(bad: str) -> None:
    with pytest.raises(ValueError):
        CtyType.from_json_bytes(bad)


def test_constructor_validation() -> None:
    with pytest.raises(TypeError):
        List("string")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Object({"a": String}, optional={"b"})


def test_friendly_names() -> None:
    assert Map(List(String)).friendly_name() == "map of list of string"
    assert Object({}).friendly_name() == "object"


@given(cty_types())
def test_type_json_round_trip(ty: CtyType) -> None:
    assert CtyType.from_json(ty.to_json()) == ty
    back = CtyType.from_json_bytes(ty.to_json_bytes())
    assert back == ty
    assert hash(back) == hash(ty)
    assert back.to_json_bytes() == ty.to_json_bytes()


@given(cty_types())
def test_kind_is_the_first_word_of_the_json_form(ty: CtyType) -> None:
    form = ty.to_json()
    assert ty.kind == (form if isinstance(form, str) else form[0])
