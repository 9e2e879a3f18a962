#!/usr/bin/env python3
"""Generate ``docs/`` (Terraform registry layout) from the provider's schemas and ``examples/``.

    python scripts/gen_docs.py           # (re)write docs/
    python scripts/gen_docs.py --check   # exit 1 when docs/ is stale (what tests/unit/test_docs_fresh.py runs)

Sources of truth:
  * the schemas of ``build_provider()`` (the real provider, nothing connects): per attribute its kind
    (Required / Optional / Read-Only), type, description, default, constraints (validators'
    ``description``), replacement (RequiresReplace* plan modifiers), sensitive and deprecated markers,
    nested blocks, and the provider's environment variables (``env_fallback``);
  * ``examples/provider/provider.tf``, ``examples/resources/<type>/{resource.tf,import.sh}`` and
    ``examples/data-sources/<type>/data-source.tf`` for the Example Usage and Import sections.

Output: ``docs/index.md``, ``docs/resources/<type without vmdk_>.md``, ``docs/data-sources/<...>.md``.
Deterministic: attributes sorted by name, resources by type, no timestamps.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
EXAMPLES = REPO / "examples"
PROVIDER_NAME = "terraform-provider-vmdk"

sys.path.insert(0, str(REPO / "provider"))


# ----------------------------------------------------------------------------------------- types

def type_name(t: Any) -> str:
    """A cty type as the registry docs spell it: String, Number, Boolean, List of String, Object, ..."""
    from terraform_provider_vmdk.framework.types import (
        CollectionType,
        DynamicType,
        List,
        Map,
        Object,
        PrimitiveType,
        Set,
        Tuple,
    )

    if isinstance(t, PrimitiveType):
        return {"string": "String", "number": "Number", "bool": "Boolean"}.get(t.name, t.name.title())
    if isinstance(t, DynamicType):
        return "Dynamic"
    if isinstance(t, CollectionType):
        kind = {List: "List", Set: "Set", Map: "Map"}[type(t)]
        return f"{kind} of {type_name(t.element)}"
    if isinstance(t, Object):
        return "Object"
    if isinstance(t, Tuple):
        return "Tuple"
    return str(t)


def object_of(t: Any) -> Any:
    """The Object inside an attribute type (Object, or a collection of Objects), else None."""
    from terraform_provider_vmdk.framework.types import CollectionType, Object

    while isinstance(t, CollectionType):
        t = t.element
    return t if isinstance(t, Object) else None


# ----------------------------------------------------------------------------------- attributes

def literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"' if value == "" else value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    return str(value)


def sentence(text: str) -> str:
    text = " ".join(text.split())
    if text and text[-1] not in ".!?:":
        text += "."
    return text


def said(constraint: str, description: str) -> bool:
    """Whether a description already states a constraint (verbatim, or every `value` it lists)."""
    if constraint in description:
        return True
    values = re.findall(r"`([^`]+)`", constraint)
    return len(values) >= 2 and all(f"`{v}`" in description for v in values)


def replaces(modifier: Any) -> bool:
    from terraform_provider_vmdk.framework.planmodifiers import RequiresReplace, RequiresReplaceIf

    return isinstance(modifier, (RequiresReplace, RequiresReplaceIf)) or "Replace" in type(modifier).__name__


def attribute_line(name: str, attr: Any, anchor: str | None = None) -> str:
    flags = [type_name(attr.type)]
    if attr.sensitive:
        flags.append("Sensitive")
    if attr.deprecation_message:
        flags.append("Deprecated")
    parts = [f"- `{name}` ({', '.join(flags)})"]
    if attr.description:
        parts.append(sentence(attr.description.strip()))
    constraints = [v.description for v in attr.validators
                   if getattr(v, "description", "") and not said(v.description, attr.description)]
    if constraints:
        phrases, previous = [], ""
        for c in constraints:
            phrase = ("not be " + c[4:]) if c.startswith("not ") else ("be " + c)
            if previous.startswith("be ") and phrase.startswith("be "):
                phrase = phrase[3:]
            phrases.append(phrase)
            previous = phrase if phrase.startswith(("be ", "not be ")) else previous
        parts.append(sentence("Must " + " and ".join(phrases)))
    if attr.default is not None:
        value = f"`{literal(attr.default)}`"
        if not re.search(r"\bDefaults?( to)?:? " + re.escape(value), attr.description):
            parts.append(f"Defaults to {value}.")
    for modifier in attr.plan_modifiers:
        if replaces(modifier) and getattr(modifier, "description", ""):
            parts.append(sentence(modifier.description))
    if attr.deprecation_message:
        parts.append(sentence("**Deprecated** " + attr.deprecation_message))
    if anchor:
        parts.append(f"(see [below for nested schema](#{anchor}))")
    return " ".join(parts)


def kind_of(attr: Any) -> str:
    if attr.required:
        return "Required"
    if attr.optional:
        return "Optional"
    return "Read-Only"


def block_kind(nb: Any) -> str:
    return "Required" if nb.min_items > 0 else "Optional"


def render_block(block: Any, prefix: str, top: bool) -> tuple[list[str], list[tuple[str, str, Any]]]:
    """The grouped attribute list of one block, plus nested things to document below it.

    Nested entries are (anchor, title path, block-or-object); top-level groups get ``###`` headings,
    nested ones the ``Required:`` style of tfplugindocs.
    """
    groups: dict[str, list[str]] = {"Required": [], "Optional": [], "Read-Only": []}
    nested: list[tuple[str, str, Any]] = []
    for name in sorted(block.attributes):
        attr = block.attributes[name]
        anchor = None
        obj = object_of(attr.type)
        if obj is not None:
            anchor = "nestedatt--" + f"{prefix}{name}".replace(".", "--")
            nested.append((anchor, f"{prefix}{name}", obj))
        groups[kind_of(attr)].append(attribute_line(name, attr, anchor))
    for name in sorted(block.blocks):
        nb = block.blocks[name]
        anchor = "nestedblock--" + f"{prefix}{name}".replace(".", "--")
        desc = nb.description or nb.block.description
        limits = []
        if nb.max_items == 1:
            limits.append("Max: 1")
        text = f"- `{name}` (Block{', ' + nb.nesting.value.title() if nb.nesting.value != 'single' else ''}"
        text += f"{', ' + ', '.join(limits) if limits else ''})"
        if desc:
            text += " " + sentence(desc)
        text += f" (see [below for nested schema](#{anchor}))"
        groups[block_kind(nb)].append(text)
        nested.append((anchor, f"{prefix}{name}", nb.block))
    lines: list[str] = []
    for group, items in groups.items():
        if not items:
            continue
        lines += [f"### {group}", ""] if top else [f"{group}:", ""]
        lines += items
        lines.append("")
    return lines, nested


def render_object(obj: Any) -> list[str]:
    items = [f"- `{name}` ({type_name(obj.attributes[name])})" for name in sorted(obj.attributes)]
    return ["Read-Only:", "", *items, ""]


def render_schema(schema: Any) -> list[str]:
    from terraform_provider_vmdk.framework.types import Object

    lines = ["## Schema", ""]
    body, queue = render_block(schema.block, "", top=True)
    lines += body
    while queue:
        anchor, path, thing = queue.pop(0)
        lines += [f'<a id="{anchor}"></a>', f"### Nested Schema for `{path}`", ""]
        if isinstance(thing, Object):
            lines += render_object(thing)
        else:
            more, deeper = render_block(thing, path + ".", top=False)
            lines += more
            queue += deeper
    return lines


# ---------------------------------------------------------------------------------------- pages

def example(path: Path, lang: str) -> list[str]:
    if not path.is_file():
        return []
    text = path.read_text().strip("\n")
    return ["```" + lang, text, "```", ""]


def front_matter(title: str, description: str) -> list[str]:
    first = description.strip().split("\n\n")[0] if description else ""
    lines = ["---", f'page_title: "{title}"', 'subcategory: ""', "description: |-"]
    lines += ["  " + line if line else "" for line in (first.splitlines() or [""])]
    return lines + ["---", ""]


def short(type_name_: str) -> str:
    return type_name_[len("vmdk_"):] if type_name_.startswith("vmdk_") else type_name_


def resource_page(type_name_: str, schema: Any, kind: str) -> str:
    is_resource = kind == "Resource"
    lines = front_matter(f"{type_name_} {kind} - {PROVIDER_NAME}", schema.block.description)
    lines += [f"# {type_name_} ({kind})", ""]
    if schema.block.description:
        lines += [schema.block.description.strip(), ""]
    folder = EXAMPLES / ("resources" if is_resource else "data-sources") / type_name_
    usage = example(folder / ("resource.tf" if is_resource else "data-source.tf"), "terraform")
    if usage:
        lines += ["## Example Usage", "", *usage]
    lines += render_schema(schema)
    if is_resource:
        imp = example(folder / "import.sh", "shell")
        if imp:
            lines += ["## Import", "", "Import is supported using the following syntax:", "", *imp]
    return "\n".join(lines).rstrip("\n") + "\n"


def provider_page(provider: Any) -> str:
    schema = provider.schema()
    lines = front_matter(f"Provider: {provider.type_name}", schema.block.description)
    lines += [f"# {provider.type_name} Provider", ""]
    if schema.block.description:
        lines += [schema.block.description.strip(), ""]
    resources = sorted(r.type_name for r in provider.resources())
    data_sources = sorted(d.type_name for d in provider.data_sources())
    if resources or data_sources:
        lines += ["It offers:", ""]
        lines += [f"- resource [`{r}`](resources/{short(r)}.md)" for r in resources]
        lines += [f"- data source [`{d}`](data-sources/{short(d)}.md)" for d in data_sources]
        lines.append("")
    usage = example(EXAMPLES / "provider" / "provider.tf", "terraform")
    if usage:
        lines += ["## Example Usage", "", *usage]
    env = [(e, name) for name in sorted(schema.attributes) for e in schema.attributes[name].env_fallback]
    if env:
        lines += ["## Environment Variables", "",
                  "Settings missing from the provider block are read from these variables (the names "
                  "terraform-provider-vsphere uses):", "",
                  "| Variable | Setting |", "| --- | --- |"]
        lines += [f"| `{e}` | `{name}` |" for e, name in env]
        lines.append("")
    lines += render_schema(schema)
    return "\n".join(lines).rstrip("\n") + "\n"


def build() -> dict[str, str]:
    """Relative path under docs/ → content."""
    from terraform_provider_vmdk.cli import build_provider

    provider = build_provider()
    pages = {"index.md": provider_page(provider)}
    for res in provider.resources():
        pages[f"resources/{short(res.type_name)}.md"] = resource_page(res.type_name, res.schema(), "Resource")
    for ds in provider.data_sources():
        pages[f"data-sources/{short(ds.type_name)}.md"] = resource_page(ds.type_name, ds.schema(), "Data Source")
    return dict(sorted(pages.items()))


def existing() -> dict[str, str]:
    found = {}
    for path in [DOCS / "index.md", *sorted((DOCS / "resources").glob("*.md")),
                 *sorted((DOCS / "data-sources").glob("*.md"))]:
        if path.is_file():
            found[path.relative_to(DOCS).as_posix()] = path.read_text()
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate docs/ from the provider schemas and examples/.")
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/ differs from what would be generated")
    args = parser.parse_args(argv)
    wanted, have = build(), existing()
    stale = sorted(p for p in set(wanted) | set(have) if wanted.get(p) != have.get(p))
    if args.check:
        if not stale:
            print(f"docs/ is up to date ({len(wanted)} pages)")
            return 0
        for p in stale:
            print(f"stale: docs/{p}" + (" (missing)" if p not in have else " (obsolete)" if p not in wanted else ""))
            if p in have and p in wanted:
                sys.stdout.writelines(list(difflib.unified_diff(
                    have[p].splitlines(True), wanted[p].splitlines(True), f"docs/{p}", "generated", n=1))[:40])
        print("run: python scripts/gen_docs.py", file=sys.stderr)
        return 1
    for p in stale:
        target = DOCS / p
        if p not in wanted:
            target.unlink()
            print(f"removed docs/{p}")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(wanted[p])
        print(f"wrote docs/{p}")
    if not stale:
        print(f"docs/ is up to date ({len(wanted)} pages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
