"""Compatibility re-export of the value modules this file was split into (being phased out)."""

from __future__ import annotations

from .dynamic_value import DynamicValue
from .json_codec import decode_json, encode_json
from .msgpack_codec import decode, encode
from .numbers import NumberValue, normalize_number
from .type_inference import implied_type
from .unknowns import UNKNOWN, Refinements, Unknown, is_unknown
from .value_checks import CtyValueError
from .walk import transform, walk

__all__ = [
    "UNKNOWN",
    "Unknown",
    "Refinements",
    "DynamicValue",
    "CtyValueError",
    "NumberValue",
    "is_unknown",
    "normalize_number",
    "implied_type",
    "encode",
    "decode",
    "encode_json",
    "decode_json",
    "walk",
    "transform",
]
