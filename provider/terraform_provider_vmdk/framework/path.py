"""Attribute paths: where in a value a diagnostic or a plan decision applies.

Deliberately plain (three step kinds mirroring the protocol's ``AttributePath.Step`` oneof:
``attribute_name`` / ``element_key_string`` / ``element_key_int``) so the plugin layer can convert them
to protobuf without knowing anything else. Sets have no protocol step kind; code that walks values uses
``ElementKeyInt(position)`` for set elements, which only means something to us, so the plugin layer
should cut a path at a set before sending it to Terraform.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TypeAlias

__all__ = [
    "AttributeName",
    "ElementKeyString",
    "ElementKeyInt",
    "Step",
    "AttributePath",
]


@dataclass(frozen=True, slots=True)
class AttributeName:
    """``.name``: an object attribute (or nested block)."""

    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class ElementKeyString:
    """``["key"]``: a map element."""

    key: str

    def __str__(self) -> str:
        return f"[{json.dumps(self.key, ensure_ascii=False)}]"


@dataclass(frozen=True, slots=True)
class ElementKeyInt:
    """``[0]``: a list or tuple element (or, for our own use only, a set position)."""

    key: int

    def __str__(self) -> str:
        return f"[{self.key}]"


Step: TypeAlias = AttributeName | ElementKeyString | ElementKeyInt

_IDENT = re.compile(r"[^.\[\]\"]+")
_INDEX = re.compile(r"\[(-?\d+)\]")


@dataclass(frozen=True, slots=True)
class AttributePath:
    """An immutable sequence of steps; builders return new paths.

    ``str()`` gives Terraform-style text: ``size_gb``, ``timeouts.create``, ``disks[0].size``,
    ``tags["x"]``; the empty (root) path is ``""``.
    """

    steps: tuple[Step, ...] = ()

    @classmethod
    def root(cls, name: str) -> AttributePath:
        """A path starting at a top-level attribute: ``AttributePath.root("disks").key(0)``."""
        return cls((AttributeName(name),))

    @classmethod
    def empty(cls) -> AttributePath:
        """The path of the whole value."""
        return cls(())

    @classmethod
    def parse(cls, text: str) -> AttributePath:
        """Parse the ``str()`` form back (``a.b[0]["k"]``); a leading ``.`` is accepted."""
        steps: list[Step] = []
        i = 0
        n = len(text)
        if text.startswith("."):
            i = 1
        expect_name = i < n and text[i] not in "["
        while i < n:
            if expect_name:
                m = _IDENT.match(text, i)
                if not m:
                    raise ValueError(f"invalid attribute path {text!r} at offset {i}")
                steps.append(AttributeName(m.group()))
                i = m.end()
            elif text[i] == ".":
                i += 1
                expect_name = True
                continue
            elif text.startswith('["', i):
                dec = json.JSONDecoder()
                try:
                    key, end = dec.raw_decode(text, i + 1)
                except ValueError:
                    raise ValueError(f"invalid string key in attribute path {text!r} at offset {i}") from None
                if not isinstance(key, str) or end >= n or text[end] != "]":
                    raise ValueError(f"invalid string key in attribute path {text!r} at offset {i}")
                steps.append(ElementKeyString(key))
                i = end + 1
            else:
                m = _INDEX.match(text, i)
                if not m:
                    raise ValueError(f"invalid attribute path {text!r} at offset {i}")
                steps.append(ElementKeyInt(int(m.group(1))))
                i = m.end()
            expect_name = False
        if expect_name and text:
            raise ValueError(f"attribute path {text!r} ends with '.'")
        return cls(tuple(steps))

    # -- builders -------------------------------------------------------------------------------
    def attr(self, name: str) -> AttributePath:
        return AttributePath(self.steps + (AttributeName(name),))

    def key(self, key: str | int) -> AttributePath:
        """Element step: an ``int`` indexes a list/tuple, a ``str`` keys a map."""
        if isinstance(key, bool) or not isinstance(key, (str, int)):
            raise TypeError(f"path element key must be str or int, got {key!r}")
        step: Step = ElementKeyInt(key) if isinstance(key, int) else ElementKeyString(key)
        return AttributePath(self.steps + (step,))

    def index(self, i: int) -> AttributePath:
        return AttributePath(self.steps + (ElementKeyInt(i),))

    def then(self, step: Step) -> AttributePath:
        return AttributePath(self.steps + (step,))

    def __add__(self, other: AttributePath | Sequence[Step]) -> AttributePath:
        extra = other.steps if isinstance(other, AttributePath) else tuple(other)
        return AttributePath(self.steps + extra)

    # -- inspection -----------------------------------------------------------------------------
    @property
    def parent(self) -> AttributePath:
        """The path without its last step (the root's parent is the root)."""
        return AttributePath(self.steps[:-1])

    @property
    def last(self) -> Step | None:
        return self.steps[-1] if self.steps else None

    def startswith(self, prefix: AttributePath) -> bool:
        """True if ``prefix`` is this path or an ancestor of it."""
        return self.steps[: len(prefix.steps)] == prefix.steps

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def __bool__(self) -> bool:
        return bool(self.steps)

    def __str__(self) -> str:
        out: list[str] = []
        for i, step in enumerate(self.steps):
            if isinstance(step, AttributeName) and i > 0:
                out.append(".")
            out.append(str(step))
        return "".join(out)

    def display(self) -> str:
        """Form used in error messages: cty's leading-dot style (``.disks[0].size``), root ``(root)``."""
        if not self.steps:
            return "(root)"
        text = str(self)
        return "." + text if isinstance(self.steps[0], AttributeName) else text

    def __repr__(self) -> str:
        return f"AttributePath({str(self)!r})"
