"""cty values: msgpack/JSON wire forms against hand-written Terraform-style bytes, plus properties."""

from __future__ import annotations

import copy
import json
import math
from decimal import Decimal
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from terraform_provider_vmdk.framework.dynamic_value import DynamicValue
from terraform_provider_vmdk.framework.json_codec import decode_json, encode_json
from terraform_provider_vmdk.framework.msgpack_codec import decode, encode
from terraform_provider_vmdk.framework.numbers import normalize_number
from terraform_provider_vmdk.framework.path import AttributePath, ElementKeyInt
from terraform_provider_vmdk.framework.type_inference import implied_type
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
)
from terraform_provider_vmdk.framework.unknowns import UNKNOWN, Refinements, Unknown, is_unknown
from terraform_provider_vmdk.framework.value_checks import CtyValueError
from terraform_provider_vmdk.framework.walk import transform, walk

try:
    from .test_values_strategies import canon, numbers, strict_equal, typed_values, values_of
    from .value_helpers import apply_path, is_known_deep
except ImportError:  # tests/unit is not a package: pytest puts it on sys.path
    from test_values_strategies import canon, numbers, strict_equal, typed_values, values_of
    from value_helpers import apply_path, is_known_deep

VOLUME = Object(
    {
        "name": String,
        "size_gb": Number,
        "thin": Bool,
        "tags": Map(String),
        "disks": List(Object({"size": Number, "label": String})),
    }
)

PROPS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- decoding Terraform-style bytes ----------------------------------------------------------------


def test_decode_simple_object() -> None:
    assert decode(b"\x81\xa4name\xa3abc", Object({"name": String})) == {"name": "abc"}


def test_decode_null_and_ext0_unknown() -> None:
    ty = Object({"id": String, "size": Number})
    # {"id": <unknown ext0>, "size": nil}; cty writes fixext1 d4 00 00
    assert decode(b"\x82\xa2id\xd4\x00\x00\xa4size\xc0", ty) == {"id": UNKNOWN, "size": None}
    assert decode(b"\xc0", ty) is None
    assert decode(b"\xd4\x00\x00", ty) == UNKNOWN


def test_any_extension_code_is_unknown() -> None:
    assert is_unknown(decode(msgpack.packb(msgpack.ExtType(7, b"whatever")), String))
    assert is_unknown(decode(msgpack.packb(msgpack.ExtType(0, b"")), List(String)))


def test_refined_unknown_string_prefix() -> None:
    payload = msgpack.packb({1: False, 2: "vol-"})
    v = decode(msgpack.packb(msgpack.ExtType(12, payload)), String)
    assert is_unknown(v)
    assert v.refinements == Refinements(nullness=False, string_prefix="vol-")
    assert v != UNKNOWN


def test_refined_unknown_number_bounds_and_lengths() -> None:
    payload = msgpack.packb({3: [1, True], 4: ["123456789012345678901234567890.5", False]})
    v = decode(msgpack.packb(msgpack.ExtType(12, payload)), Number)
    assert v.refinements.number_lower == (1, True)
    assert v.refinements.number_upper == (Decimal("123456789012345678901234567890.5"), False)
    payload = msgpack.packb({5: 1, 6: 3, 99: "future"})
    v = decode(msgpack.packb(msgpack.ExtType(12, payload)), Set(String))
    assert v.refinements == Refinements(length_lower=1, length_upper=3)


@pytest.mark.parametrize(
    "payload",
    [b"", b"\x00", b"\xc1garbage", msgpack.packb([1, 2]), msgpack.packb({2: 5, 3: "x", 5: "y", 1: "n"})],
)
def test_malformed_refinements_never_fail(payload: bytes) -> None:
    assert decode(msgpack.packb(msgpack.ExtType(12, payload)), Number) == UNKNOWN


def test_refinements_not_valid_for_type_are_dropped() -> None:
    payload = msgpack.packb({2: "pre", 5: 2})
    assert decode(msgpack.packb(msgpack.ExtType(12, payload)), Number) == UNKNOWN
    assert decode(msgpack.packb(msgpack.ExtType(12, payload)), DynamicPseudoType) == UNKNOWN


def test_number_wire_forms() -> None:
    assert decode(msgpack.packb(2**64 - 1), Number) == 2**64 - 1
    assert decode(msgpack.packb(1.5), Number) == 1.5
    assert type(decode(msgpack.packb(3.0), Number)) is int
    big = "123456789012345678901234567890.000000000000000001"
    assert decode(msgpack.packb(big), Number) == Decimal(big)
    assert decode(msgpack.packb("100000000000000000000000000000"), Number) == 10**29
    assert decode(msgpack.packb("0.5"), Number) == 0.5
    with pytest.raises(CtyValueError, match="expected number"):
        decode(msgpack.packb("abc"), Number)


def test_number_encoding_choices() -> None:
    ty = Number
    assert msgpack.unpackb(encode(2**63 - 1, ty)) == 2**63 - 1
    assert msgpack.unpackb(encode(-(2**63), ty)) == -(2**63)
    assert msgpack.unpackb(encode(2**63, ty)) == 2.0**63  # exact float64
    assert msgpack.unpackb(encode(2**63 + 1, ty)) == str(2**63 + 1)  # not exact as float: string
    assert msgpack.unpackb(encode(3.0, ty)) == 3  # integral float as int
    assert msgpack.unpackb(encode(0.1, ty)) == 0.1
    assert msgpack.unpackb(encode(Decimal("0.1"), ty)) == "0.1"
    assert msgpack.unpackb(encode(Decimal("2.5"), ty)) == 2.5
    assert msgpack.unpackb(encode(Decimal("1E-30"), ty)) == "0." + "0" * 29 + "1"
    assert msgpack.unpackb(encode(math.inf, ty)) == math.inf
    with pytest.raises(CtyValueError, match="NaN"):
        encode(math.nan, ty)
    with pytest.raises(CtyValueError, match="expected number, got bool"):
        encode(True, ty)


def test_decode_dynamic() -> None:
    data = msgpack.packb([b'["list","string"]', ["a", "b"]], use_bin_type=True)
    assert decode(data, DynamicPseudoType) == DynamicValue(List(String), ["a", "b"])
    assert decode(b"\xc0", DynamicPseudoType) is None
    assert decode(b"\xd4\x00\x00", DynamicPseudoType) == UNKNOWN
    # unknown of a known type under a dynamic attribute
    data = msgpack.packb([b'"string"', msgpack.ExtType(0, b"\x00")], use_bin_type=True)
    assert decode(data, DynamicPseudoType) == DynamicValue(String, UNKNOWN)
    # typed null keeps its type
    data = msgpack.packb([b'"number"', None], use_bin_type=True)
    assert decode(data, DynamicPseudoType) == DynamicValue(Number, None)
    with pytest.raises(CtyValueError, match="dynamic value"):
        decode(msgpack.packb(["x"]), DynamicPseudoType)


def test_encode_dynamic_wire_form() -> None:
    out = msgpack.unpackb(encode(DynamicValue(Map(Number), {"a": 1}), DynamicPseudoType), raw=False)
    assert out == [b'["map","number"]', {"a": 1}]
    assert encode(None, DynamicPseudoType) == b"\xc0"
    assert encode(UNKNOWN, DynamicPseudoType) == b"\xd4\x00\x00"
    # refinements never go out on a dynamic-typed unknown
    assert encode(Unknown(Refinements(nullness=False)), DynamicPseudoType) == b"\xd4\x00\x00"


def test_encode_dynamic_infers_type_of_plain_values() -> None:
    out = msgpack.unpackb(encode({"a": [1, "x", None]}, DynamicPseudoType), raw=False)
    assert json.loads(out[0]) == ["object", {"a": ["tuple", ["number", "string", "dynamic"]]}]
    assert out[1] == {"a": [1, "x", None]}
    assert implied_type(DynamicValue(Set(String), [])) == Set(String)
    assert implied_type(True) == Bool
    assert implied_type(frozenset({1, 2})) == Set(Number)


def test_encode_unknowns() -> None:
    assert encode(UNKNOWN, String) == b"\xd4\x00\x00"
    v = Unknown(Refinements(nullness=False, string_prefix="vol-"))
    ext = msgpack.unpackb(encode(v, String))
    assert ext.code == 12
    assert msgpack.unpackb(ext.data, strict_map_key=False) == {1: False, 2: "vol-"}
    assert encode(v, String, refinements=False) == b"\xd4\x00\x00"
    # a prefix on a number is not a valid refinement: dropped, nullness kept
    ext = msgpack.unpackb(encode(v, Number))
    assert msgpack.unpackb(ext.data, strict_map_key=False) == {1: False}
    assert encode(Unknown(Refinements(string_prefix="x")), Number) == b"\xd4\x00\x00"


# -- objects ----------------------------------------------------------------------------------------


def test_encode_object_fills_missing_attributes_with_null() -> None:
    out = msgpack.unpackb(encode({"name": "v"}, VOLUME), raw=False)
    assert out == {"name": "v", "size_gb": None, "thin": None, "tags": None, "disks": None}


def test_encode_rejects_extra_attribute() -> None:
    with pytest.raises(CtyValueError, match=r"^\(root\): unsupported attribute\(s\) 'colour'"):
        encode({"name": "v", "colour": "red"}, VOLUME)


def test_decode_rejects_missing_and_extra_attributes() -> None:
    with pytest.raises(CtyValueError, match=r"missing attribute\(s\) 'size'"):
        decode(msgpack.packb({"name": "x"}), Object({"name": String, "size": Number}))
    with pytest.raises(CtyValueError, match=r"unsupported attribute\(s\) 'extra'"):
        decode(msgpack.packb({"name": "x", "extra": 1}), Object({"name": String}))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"disks": [{"size": "10"}]}, r"^\.disks\[0\]\.size: expected number, got str$"),
        ({"tags": {"a": 1}}, r'^\.tags\["a"\]: expected string, got int$'),
        ({"thin": 1}, r"^\.thin: expected bool, got int$"),
        ({"disks": {"size": 1}}, r"^\.disks: expected list of object, got dict$"),
        ({"disks": [{"bogus": 1}]}, r"^\.disks\[0\]: unsupported attribute"),
        ({"name": DynamicValue(Number, 1)}, r"^\.name: expected string, got dynamic value of number$"),
    ],
)
def test_type_mismatch_messages_name_the_path(value: dict[str, Any], message: str) -> None:
    with pytest.raises(CtyValueError, match=message) as info:
        encode(value, VOLUME)
    assert isinstance(info.value, ValueError)


def test_decode_mismatch_names_the_path() -> None:
    data = msgpack.packb({"name": "x", "size_gb": 1, "thin": True, "tags": {}, "disks": [{"size": True,
                                                                                          "label": None}]})
    with pytest.raises(CtyValueError) as info:
        decode(data, VOLUME)
    assert info.value.path == AttributePath.root("disks").index(0).attr("size")
    assert str(info.value).startswith(".disks[0].size: expected number")


def test_tuple_length_checked() -> None:
    with pytest.raises(CtyValueError, match="tuple of 2"):
        encode(["a"], Tuple([String, Number]))
    with pytest.raises(CtyValueError, match="tuple of 2"):
        decode(msgpack.packb(["a"]), Tuple([String, Number]))


def test_garbage_bytes() -> None:
    with pytest.raises(CtyValueError, match="invalid msgpack"):
        decode(b"\xc0\xc0", String)
    with pytest.raises(CtyValueError, match="invalid msgpack"):
        decode(b"\x92\x01", List(Number))


def test_sets_accept_python_sets_and_decode_to_lists() -> None:
    assert decode(encode({"b"}, Set(String)), Set(String)) == ["b"]
    assert decode(encode([], Set(String)), Set(String)) == []


def test_strings_nfc_normalised_on_encode() -> None:
    assert decode(encode("e\u0301", String), String) == "\u00e9"
    with pytest.raises(CtyValueError):
        encode("\ud800", String)


# -- JSON state ------------------------------------------------------------------------------------


def test_decode_json_state() -> None:
    raw = b'{"name":"v","size_gb":123456789012345678901234567890,"thin":true,"tags":{"a":"b"},' \
          b'"disks":[{"size":1.5,"label":null},{"size":0.1,"label":"x"}]}'
    v = decode_json(raw + b"", VOLUME)
    assert v["size_gb"] == 123456789012345678901234567890 and type(v["size_gb"]) is int
    assert v["disks"][0]["size"] == 1.5 and type(v["disks"][0]["size"]) is float
    assert v["disks"][1]["size"] == Decimal("0.1")


def test_decode_json_missing_attribute_is_null_and_extra_is_error() -> None:
    assert decode_json(b'{"name":"v"}', VOLUME) == {"name": "v", "size_gb": None, "thin": None, "tags": None,
                                                    "disks": None}
    with pytest.raises(CtyValueError, match="unsupported attribute"):
        decode_json(b'{"name":"v","old_attr":1}', VOLUME)
    assert decode_json(b'{"name":"v","old_attr":1}', VOLUME, ignore_undeclared=True)["name"] == "v"


def test_decode_json_dynamic_and_conversions() -> None:
    ty = Object({"d": DynamicPseudoType, "n": Number, "s": String, "b": Bool})
    v = decode_json(b'{"d":{"value":{"x":[1]},"type":["map",["list","number"]]},"n":"12","s":5,"b":"true"}', ty)
    assert v == {"d": DynamicValue(Map(List(Number)), {"x": [1]}), "n": 12, "s": "5", "b": True}
    with pytest.raises(CtyValueError, match="type"):
        decode_json(b'{"d":{"value":1}}', ty)
    with pytest.raises(CtyValueError, match="invalid JSON"):
        decode_json(b'{"n":NaN}', ty)


def test_encode_json() -> None:
    ty = Object({"n": Number, "big": Number, "d": DynamicPseudoType, "s": Set(String)})
    out = encode_json({"n": Decimal("0.1"), "big": 2**80, "d": DynamicValue(List(Bool), [True]), "s": ["a"]}, ty)
    assert out == (b'{"big":1208925819614629174706176,"d":{"value":[true],"type":["list","bool"]},'
                   b'"n":0.1,"s":["a"]}')
    with pytest.raises(CtyValueError, match="unknown"):
        encode_json({"n": UNKNOWN}, ty)


# -- helpers ---------------------------------------------------------------------------------------


def test_unknown_semantics() -> None:
    assert Unknown() == UNKNOWN and Unknown() is not UNKNOWN
    assert hash(Unknown()) == hash(UNKNOWN)
    with pytest.raises(TypeError):
        bool(UNKNOWN)
    with pytest.raises(AttributeError):
        UNKNOWN.refinements = None  # type: ignore[misc]
    assert copy.deepcopy({"a": UNKNOWN})["a"] is UNKNOWN
    assert is_unknown(DynamicValue(String, UNKNOWN))
    assert Unknown(Refinements()) == UNKNOWN  # empty refinements collapse
    assert repr(UNKNOWN) == "UNKNOWN"


def test_known_deep() -> None:
    assert is_known_deep({"a": [1, {"b": "c"}]})
    assert not is_known_deep({"a": [1, {"b": UNKNOWN}]})
    assert not is_known_deep([DynamicValue(List(String), [Unknown(Refinements(string_prefix="x"))])])
    assert is_known_deep(None)


def test_normalize_number() -> None:
    assert normalize_number(Decimal("5.000")) == 5 and type(normalize_number(Decimal("5.000"))) is int
    assert type(normalize_number(Decimal("0.25"))) is float
    assert type(normalize_number("0.1")) is Decimal
    assert type(normalize_number(Decimal("1e999999999"))) is Decimal  # not expanded into a huge int
    with pytest.raises(TypeError):
        normalize_number(False)


def test_walk_and_transform() -> None:
    v = {"name": "n", "size_gb": UNKNOWN, "thin": None, "tags": {"k": "v"},
         "disks": [{"size": 1, "label": UNKNOWN}]}
    paths = {str(p): (x, t) for p, x, t in walk(v, VOLUME)}
    assert paths["disks[0].label"] == (UNKNOWN, String)
    assert paths['tags["k"]'] == ("v", String)
    assert paths[""][1] == VOLUME
    unknown_paths = [str(p) for p, x, _ in walk(v, VOLUME) if is_unknown(x)]
    assert unknown_paths == ["disks[0].label", "size_gb"]
    nulled = transform(v, VOLUME, lambda p, x, t: None if is_unknown(x) else x)
    assert nulled["size_gb"] is None and nulled["disks"][0]["label"] is None
    assert is_known_deep(nulled)
    assert v["size_gb"] is UNKNOWN  # input untouched


def test_walk_through_dynamic_and_sets() -> None:
    ty = Object({"d": DynamicPseudoType, "s": Set(String)})
    v = {"d": DynamicValue(List(Number), [7]), "s": ["a"]}
    got = [(str(p), x, t) for p, x, t in walk(v, ty)]
    assert ("d", [7], List(Number)) in got
    assert ("d[0]", 7, Number) in got
    assert ("s[0]", "a", String) in got
    doubled = transform(v, ty, lambda p, x, t: x * 2 if t == Number and isinstance(x, int) else x)
    assert doubled["d"] == DynamicValue(List(Number), [14])


# -- properties ------------------------------------------------------------------------------------


@PROPS
@given(typed_values())
def test_msgpack_round_trip(tv: tuple[CtyType, Any]) -> None:
    ty, v = tv
    data = encode(v, ty)
    back = decode(data, ty)
    assert strict_equal(back, canon(v, ty))
    assert encode(back, ty) == data  # stable bytes


@PROPS
@given(values_of(DynamicPseudoType).filter(lambda v: isinstance(v, DynamicValue)))
def test_msgpack_round_trip_dynamic(v: DynamicValue) -> None:
    data = encode(v, DynamicPseudoType)
    assert strict_equal(decode(data, DynamicPseudoType), canon(v, DynamicPseudoType))
    assert strict_equal(decode(data, DynamicPseudoType).value, decode(encode(v.value, v.type), v.type))
    if is_known_deep(v):
        assert strict_equal(decode_json(encode_json(v, DynamicPseudoType), DynamicPseudoType),
                            canon(v, DynamicPseudoType))


@PROPS
@given(typed_values(unknowns=False))
def test_json_round_trip(tv: tuple[CtyType, Any]) -> None:
    ty, v = tv
    text = encode_json(v, ty)
    json.loads(text)  # valid JSON
    assert strict_equal(decode_json(text, ty), canon(v, ty))


@PROPS
@given(typed_values(unknowns=False))
def test_decoded_json_equals_decoded_msgpack(tv: tuple[CtyType, Any]) -> None:
    ty, v = tv
    assert strict_equal(decode_json(encode_json(v, ty), ty), decode(encode(v, ty), ty))


@PROPS
@given(typed_values())
def test_walk_paths_apply_back_and_find_every_unknown(tv: tuple[CtyType, Any]) -> None:
    ty, v = tv
    v = decode(encode(v, ty), ty)
    found_unknown = False
    for path, x, _ in walk(v, ty):
        found_unknown |= is_unknown(x)
        assert strict_equal(apply_path(path, v), x)
    assert found_unknown == (not is_known_deep(v))
    assert strict_equal(transform(v, ty, lambda p, x, t: x), v)


@given(numbers)
def test_number_round_trip_is_exact(n: Any) -> None:
    back = decode(encode(n, Number), Number)
    assert back == normalize_number(n)
    assert Decimal(back) == Decimal(n) if not isinstance(n, float) else back == n


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_int64_written_as_msgpack_int(n: int) -> None:
    assert type(msgpack.unpackb(encode(n, Number))) is int


def test_elementkeyint_for_set_paths() -> None:
    (p, _, _), = [w for w in walk(["x"], Set(String)) if w[0]]
    assert p.last == ElementKeyInt(0)
