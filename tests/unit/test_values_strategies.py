"""Hypothesis strategies for cty types and values (shared by the type/value/path tests; holds no tests)."""

from __future__ import annotations

import unicodedata
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from terraform_provider_vmdk.framework.dynamic_value import DynamicValue
from terraform_provider_vmdk.framework.numbers import INT64_MAX, INT64_MIN, normalize_number
from terraform_provider_vmdk.framework.types import (
    Bool,
    CollectionType,
    CtyType,
    DynamicPseudoType,
    DynamicType,
    List,
    Map,
    Number,
    Object,
    Set,
    String,
    Tuple,
)
from terraform_provider_vmdk.framework.unknowns import UNKNOWN, Refinements, Unknown

attr_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=8)
nfc_text = st.text(max_size=12).map(lambda s: unicodedata.normalize("NFC", s))
map_keys = st.text(max_size=6)

numbers: st.SearchStrategy[Any] = st.one_of(
    st.integers(min_value=INT64_MIN, max_value=INT64_MAX),
    st.sampled_from([0, 1, -1, INT64_MIN, INT64_MAX, INT64_MIN - 1, INT64_MAX + 1, 2**64 - 1, 2**64, 2**70,
                     2**53 + 1, -(2**63) - 3, 10**40]),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.5, -2.25, 1e300, 5e-324, 0.1, 1.0, -0.0, 2.0**70]),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.tuples(st.integers(-(10**45), 10**45), st.integers(1, 60)).map(lambda t: Decimal(t[0]).scaleb(-t[1])),
)


def cty_types(max_leaves: int = 8, dynamic: bool = True) -> st.SearchStrategy[CtyType]:
    prims = [String, Number, Bool] + ([DynamicPseudoType] if dynamic else [])

    def extend(inner: st.SearchStrategy[CtyType]) -> st.SearchStrategy[CtyType]:
        objects = st.dictionaries(attr_names, inner, max_size=4).flatmap(
            lambda d: st.sets(st.sampled_from(sorted(d))).map(lambda opt: Object(d, opt)) if d else st.just(Object(d))
        )
        return st.one_of(
            inner.map(List),
            inner.map(Set),
            inner.map(Map),
            st.lists(inner, max_size=3).map(Tuple),
            objects,
        )

    return st.recursive(st.sampled_from(prims), extend, max_leaves=max_leaves)


def refinements_for(ty: CtyType) -> st.SearchStrategy[Refinements]:
    nullness = st.sampled_from([None, False])
    if ty == String:
        return st.builds(Refinements, nullness=nullness,
                         string_prefix=st.text(min_size=1, max_size=5).map(lambda s: unicodedata.normalize("NFC", s)))
    if ty == Number:
        bound = st.none() | st.tuples(numbers, st.booleans())
        return st.builds(Refinements, nullness=nullness, number_lower=bound, number_upper=bound)
    if isinstance(ty, CollectionType):
        n = st.none() | st.integers(0, 20)
        return st.builds(Refinements, nullness=nullness, length_lower=n, length_upper=n)
    return st.builds(Refinements, nullness=nullness)


def unknowns_for(ty: CtyType) -> st.SearchStrategy[Unknown]:
    if isinstance(ty, DynamicType):
        return st.just(UNKNOWN)
    return st.one_of(st.just(UNKNOWN), refinements_for(ty).map(Unknown))


def values_of(ty: CtyType, *, unknowns: bool = True, depth: int = 0) -> st.SearchStrategy[Any]:
    """Any value of ``ty``, with nulls (and unknowns) possible at every level."""
    special: list[st.SearchStrategy[Any]] = [st.none()]
    if unknowns:
        special.append(unknowns_for(ty))
    return st.one_of(_known_values_of(ty, unknowns, depth), *special)


def _known_values_of(ty: CtyType, unknowns: bool, depth: int) -> st.SearchStrategy[Any]:
    def sub(t: CtyType) -> st.SearchStrategy[Any]:
        return values_of(t, unknowns=unknowns, depth=depth)

    if ty == String:
        return nfc_text
    if ty == Number:
        return numbers
    if ty == Bool:
        return st.booleans()
    if isinstance(ty, DynamicType):
        inner_types = (cty_types(max_leaves=4, dynamic=depth < 1) if depth < 2
                       else st.sampled_from([String, Number])).filter(lambda t: not isinstance(t, DynamicType))
        return inner_types.flatmap(
            lambda t: values_of(t, unknowns=unknowns, depth=depth + 1).map(lambda v: DynamicValue(t, v))
        )
    if isinstance(ty, (List, Set)):
        return st.lists(sub(ty.element), max_size=3)
    if isinstance(ty, Map):
        return st.dictionaries(map_keys, sub(ty.element), max_size=3)
    if isinstance(ty, Tuple):
        return st.tuples(*(sub(t) for t in ty.elements)).map(list)
    if isinstance(ty, Object):
        return st.fixed_dictionaries({k: sub(t) for k, t in ty.attributes.items()})
    raise AssertionError(ty)


def typed_values(*, unknowns: bool = True) -> st.SearchStrategy[tuple[CtyType, Any]]:
    return cty_types().flatmap(lambda t: values_of(t, unknowns=unknowns).map(lambda v: (t, v)))


def canon(v: Any, ty: CtyType) -> Any:
    """What a round trip should give back: normalised numbers/strings, lists for sequences."""
    if isinstance(v, DynamicValue):
        return DynamicValue(v.type, canon(v.value, v.type))
    if v is None:
        return None
    if isinstance(v, Unknown):
        r = v.refinements.for_type(ty) if v.refinements else None
        if r is not None and (r.number_lower or r.number_upper):
            r = Refinements(
                nullness=r.nullness,
                number_lower=(normalize_number(r.number_lower[0]), r.number_lower[1]) if r.number_lower else None,
                number_upper=(normalize_number(r.number_upper[0]), r.number_upper[1]) if r.number_upper else None,
            )
        return Unknown(r)
    if ty == String:
        return unicodedata.normalize("NFC", v)
    if ty == Number:
        return normalize_number(v)
    if ty == Bool:
        return v
    if isinstance(ty, (List, Set)):
        return [canon(e, ty.element) for e in v]
    if isinstance(ty, Tuple):
        return [canon(e, t) for e, t in zip(v, ty.elements, strict=False)]
    if isinstance(ty, Map):
        return {k: canon(e, ty.element) for k, e in v.items()}
    if isinstance(ty, Object):
        return {k: canon(v.get(k), t) for k, t in ty.attributes.items()}
    raise AssertionError(ty)


def strict_equal(a: Any, b: Any) -> bool:
    """``==`` that also insists on the same Python type at every node (so 1 vs 1.0 vs Decimal differ)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, DynamicValue):
        return a.type == b.type and strict_equal(a.value, b.value)
    if isinstance(a, list):
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(strict_equal(a[k], b[k]) for k in a)
    if isinstance(a, float) and a == 0:
        return str(a) == str(b)
    return bool(a == b)
