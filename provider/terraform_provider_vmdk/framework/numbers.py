"""cty numbers in Python: one canonical form, and the exact forms the wire codecs write.

A cty number is an arbitrary-precision decimal; Python holds some numbers exactly as ``int``, some as
``float`` and the rest only as ``Decimal``. This module alone decides which of the three a number
becomes (``normalize_number``) and how it is written (msgpack: int64, else float64, else decimal text;
JSON: exact text), so the msgpack codec, the JSON codec and refinement bounds all agree. Stdlib only.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from typing import Any, TypeAlias

__all__ = [
    "NumberValue",
    "INT64_MIN",
    "INT64_MAX",
    "normalize_number",
    "number_to_wire",
    "number_from_wire",
    "number_text",
]

NumberValue: TypeAlias = int | float | Decimal

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# Integral Decimals beyond this many digits stay Decimal: int() of "1e999999999" would eat memory.
_MAX_INT_DIGITS = 4300


def normalize_number(x: Any) -> NumberValue:
    """Canonical Python form of a cty number: int if integral, float if exactly a float64, else Decimal.

    Accepts int, float, Decimal and decimal strings; rejects bool and NaN (cty has no NaN). Infinities
    stay ``float``. Integral values with more than ~4300 digits stay Decimal to bound memory.
    """
    if isinstance(x, bool):
        raise TypeError("bool is not a number")
    if isinstance(x, int):
        return int(x)
    if isinstance(x, float):
        return _normalize_float(x)
    if isinstance(x, str):
        return _normalize_decimal(_parse_decimal(x))
    if isinstance(x, Decimal):
        return _normalize_decimal(x)
    raise TypeError(f"not a number: {type(x).__name__}")


def _normalize_float(x: float) -> NumberValue:
    if math.isnan(x):
        raise ValueError("NaN is not a valid cty number")
    if math.isinf(x) or not x.is_integer():
        return x
    return int(x)


def _parse_decimal(text: str) -> Decimal:
    try:
        return Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"invalid number {text!r}") from None


def _normalize_decimal(x: Decimal) -> NumberValue:
    if x.is_nan():
        raise ValueError("NaN is not a valid cty number")
    if x.is_infinite():
        return float(x)
    if x == x.to_integral_value() and x.adjusted() < _MAX_INT_DIGITS:
        return int(x)
    f = float(x)
    if not math.isinf(f) and Decimal(f) == x:
        return f
    return x


def number_to_wire(x: Any) -> int | float | str:
    """The msgpack form, cty's choice: int64 if exact, else float64 if exact, else a plain decimal string."""
    n = normalize_number(x)
    if isinstance(n, int):
        return _int_to_wire(n)
    if isinstance(n, float):
        return n
    return _decimal_text(n)


def _int_to_wire(n: int) -> int | float | str:
    if INT64_MIN <= n <= INT64_MAX:
        return n
    try:
        f = float(n)
    except OverflowError:
        return str(n)
    return f if int(f) == n else str(n)


def number_from_wire(raw: Any) -> NumberValue:
    """A number as msgpack carries it (int, float, or decimal text as str or bytes), normalised."""
    if isinstance(raw, bool):
        raise TypeError("bool is not a number")
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    if isinstance(raw, (int, float, str)):
        return normalize_number(raw)
    raise TypeError(f"not a number: {type(raw).__name__}")


def number_text(x: Any) -> str:
    """Exact JSON text of a number: decoding the text must give the very same number back."""
    n = normalize_number(x)
    if isinstance(n, int):
        return str(n)
    if isinstance(n, float):
        return _float_text(n)
    return _decimal_text(n)


def _float_text(n: float) -> str:
    if math.isinf(n):
        raise ValueError("infinity cannot be written as JSON")
    short = repr(n)
    # repr is the shortest text that rounds to n, not n itself (0.1 is really 0.1000000000000000055...).
    return short if Decimal(short) == Decimal(n) else _decimal_text(Decimal(n))


def _decimal_text(d: Decimal) -> str:
    """Plain digits like cty's ``Text('f')``; exponent form only when plain would be absurdly long."""
    return format(d, "f") if -1000 < d.adjusted() < 1000 else str(d)
