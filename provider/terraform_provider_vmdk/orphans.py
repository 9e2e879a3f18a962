"""``terraform-provider-vmdk orphans``: shadow VMs and templates of ours that no Terraform state knows.

A provider that only ever writes with its identity fixed first leaves nothing behind — but older versions,
a killed process or a state someone deleted can. This command reads the states given (``.tfstate`` files or
``terraform show -json`` output), lists every VM carrying our marks whose volume or snapshot id none of them
holds (and any extra VM beside a volume a state does hold: a duplicate or an interrupted retype's copy),
and with ``--delete`` removes them after a confirmation. It refuses to run without a state: with no state,
every volume would look orphaned.

It looks twice before it deletes: a VM that does not own the instanceUuid its marks name is a copy made
outside Terraform (vSphere's Clone copies the marks) and is listed, never deleted; objects younger than
``--min-age`` or with a task running on them (a create still uploading an image, a retype between its clone
and the original's destroy) are skipped; each one is read again right before it is deleted, and a
duplicate goes only while the volume's own backing provably holds its disk.

Connection settings come from the same environment variables as the provider (VSPHERE_SERVER, VSPHERE_USER,
VSPHERE_PASSWORD, VSPHERE_CA_FILE, VSPHERE_ALLOW_UNVERIFIED_SSL), or flags; the password only from the
environment or a prompt, never a flag (it would show in the process list).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

__all__ = ["main", "ids_in_state", "Orphan"]

USAGE_EPILOG = "Environment: VSPHERE_SERVER, VSPHERE_USER, VSPHERE_PASSWORD, VSPHERE_CA_FILE, " \
               "VSPHERE_ALLOW_UNVERIFIED_SSL."


@dataclass(frozen=True)
class Known:
    volumes: frozenset[str]
    snapshots: frozenset[str]


@dataclass(frozen=True)
class Orphan:
    id: str
    kind: str  # volume | snapshot
    name: str
    datastore: str
    size_gb: float
    created: str
    reason: str
    users: tuple[str, ...] = ()  # VMs whose disk chains hold its files: never deleted
    record: Any = None  # the Backing
    deletable: bool = True  # False: listed only (a copy made outside Terraform)
    primary: Any = None  # for a duplicate beside a volume a state holds: the volume's own backing


REASON_NO_STATE = "in no state"
REASON_BESIDE = "beside the volume's backing (duplicate or interrupted retype)"
REASON_OUTSIDE = "a copy made outside Terraform (never deleted)"


# ---------------------------------------------------------------------------------------------- states
def _resources_of_module(module: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(type, values) of every resource in a ``terraform show -json`` module, child modules included."""
    for res in module.get("resources") or ():
        yield str(res.get("type")), dict(res.get("values") or {})
    for child in module.get("child_modules") or ():
        yield from _resources_of_module(child)


def _resources(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    if "values" in document or "format_version" in document:  # terraform show -json
        yield from _resources_of_module(((document.get("values") or {}).get("root_module")) or {})
        return
    for res in document.get("resources") or ():  # a raw state (version 4)
        for instance in res.get("instances") or ():
            yield str(res.get("type")), dict(instance.get("attributes") or {})


def ids_in_state(documents: Iterable[dict[str, Any]]) -> Known:
    """The volume and snapshot ids the given states hold (a volume's id from ``backing_name`` as well, for
    states that a failed apply of an older version left without an id)."""
    volumes: set[str] = set()
    snapshots: set[str] = set()
    for document in documents:
        for rtype, values in _resources(document):
            if rtype == "vmdk_volume":
                for candidate in (values.get("id"), str(values.get("backing_name") or "")[7:]):
                    if candidate:
                        volumes.add(str(candidate).lower())
            elif rtype == "vmdk_snapshot" and values.get("id"):
                snapshots.add(str(values["id"]).lower())
    return Known(frozenset(volumes), frozenset(snapshots))


def load_states(paths: list[str]) -> list[dict[str, Any]]:
    documents = []
    for path in paths:
        try:
            document = json.loads(Path(path).read_text())
        except OSError as error:
            raise SystemExit(f"orphans: cannot read state {path}: {error.strerror}") from None
        except ValueError:
            raise SystemExit(f"orphans: {path} is not a JSON state (a .tfstate file or `terraform show -json` "
                             "output)") from None
        if not isinstance(document, dict) or not ({"resources", "values", "format_version"} & set(document)):
            raise SystemExit(f"orphans: {path} does not look like a Terraform state")
        documents.append(document)
    return documents


# ---------------------------------------------------------------------------------------------- vSphere
def find_orphans(ops: Any, known: Known) -> list[Orphan]:
    """Every VM of ours that none of the states holds, the extra VMs beside the volumes they do hold, and
    every VM carrying our marks without owning the identity they name (a copy made outside Terraform)."""
    from .vsphere.volumes.specs import GiB

    index = ops.load_index()
    found: list[Orphan] = []

    def entry(record: Any, kind: str, ident: str, reason: str, *, deletable: bool = True,
              primary: Any = None) -> Orphan:
        created = record.create_date.isoformat() if record.create_date is not None else "unknown"
        users = tuple(index.users_of(record) + index.children_of(record))
        return Orphan(ident, kind, record.name, record.datastore_name or "", round(record.size_bytes / GiB, 3),
                      created, reason, users, record, deletable, primary)

    for volume_id in sorted(index.volumes):
        choice = index.choice(volume_id)
        if volume_id.lower() not in known.volumes:
            found.extend(entry(r, "volume", volume_id, REASON_NO_STATE)
                         for r in (choice.primary, *choice.leftovers) if r is not None)
        else:
            found.extend(entry(r, "volume", volume_id, REASON_BESIDE, primary=choice.primary)
                         for r in choice.leftovers)
        found.extend(entry(r, "volume", volume_id, REASON_OUTSIDE, deletable=False) for r in choice.copies)
    for snapshot_id, record in sorted(index.templates.items()):
        if snapshot_id.lower() not in known.snapshots:
            found.append(entry(record, "snapshot", snapshot_id, REASON_NO_STATE))
    for record in sorted(index.outside, key=lambda r: r.moref_value):
        found.append(entry(record, "snapshot", record.snapshot_id or "", REASON_OUTSIDE, deletable=False))
    return found


def _table(orphans: list[Orphan], out: TextIO) -> None:
    headers = ("ID", "KIND", "NAME", "DATASTORE", "SIZE_GB", "CREATED", "WHY")
    rows = [(o.id, o.kind, o.name, o.datastore, f"{o.size_gb:g}", o.created, o.reason) for o in orphans]
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=True)]
    for row in (headers, *rows):
        out.write("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")


def _session(args: argparse.Namespace) -> Any:
    from .vsphere.connection.config import ConnectionConfig
    from .vsphere.connection.session import Session

    server = args.server or os.environ.get("VSPHERE_SERVER")
    user = args.user or os.environ.get("VSPHERE_USER")
    if not server or not user:
        raise SystemExit("orphans: set --server and --user (or VSPHERE_SERVER and VSPHERE_USER)")
    password = os.environ.get("VSPHERE_PASSWORD")
    if password is None:
        if not sys.stdin.isatty():
            raise SystemExit("orphans: set VSPHERE_PASSWORD (the password is never taken from a flag)")
        password = getpass.getpass(f"Password for {user}@{server}: ")
    unverified = args.allow_unverified_ssl or os.environ.get("VSPHERE_ALLOW_UNVERIFIED_SSL", "").lower() in (
        "1", "true", "yes", "on")
    return Session(ConnectionConfig(server=server, user=user, password=password, allow_unverified_ssl=unverified,
                                    ca_file=args.ca_file or os.environ.get("VSPHERE_CA_FILE") or None))


def parse_age(text: str) -> float:
    """``--min-age``: seconds, or a number with s, m, h or d."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    value = text.strip().lower()
    scale = units.get(value[-1:], None)
    number = value[:-1] if scale else value
    try:
        seconds = float(number) * (scale or 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an age (e.g. 90s, 30m, 1h, 2d)") from None
    if seconds < 0:
        raise argparse.ArgumentTypeError("the age cannot be negative")
    return seconds


def _why_not_now(ops: Any, orphan: Orphan, min_age: float) -> str | None:
    """Read the VM again right before deleting it: why it must stay, or None when it may go."""
    import datetime as dt

    record = ops.reread(orphan.record)
    if record is None:
        return "already gone"
    if not record.proven or record.volume_id != orphan.record.volume_id or record.kind != orphan.record.kind:
        return "it no longer is what was listed"
    created = record.create_date
    if created is None and min_age > 0:
        return ("its creation time is unknown (vSphere records it from 6.7 on), so it may be new: an apply may "
                "still be making it; --min-age 0 deletes it anyway")
    if created is not None:
        if created.tzinfo is None:
            created = created.replace(tzinfo=dt.UTC)
        age = (dt.datetime.now(dt.UTC) - created).total_seconds()
        if age < min_age:
            return f"it is only {int(age)} s old (--min-age {int(min_age)} s): an apply may still be making it"
    running = ops.running_tasks(record.moref)
    if running:
        return f"task(s) {', '.join(running)} are running on it"
    index = ops.load_index()
    held = index.users_of(record) + index.children_of(record)
    if held:
        return f"its disk is held by {', '.join(held)}"
    if orphan.primary is not None and ops.disk_present(ops.reread(orphan.primary)) is not True:
        return f"the volume's own backing {orphan.primary.name} could not be proven to hold its disk"
    return None


def _delete(ops: Any, orphans: list[Orphan], args: argparse.Namespace, out: TextIO) -> int:
    candidates = [o for o in orphans if o.deletable]
    if not candidates:
        out.write("Nothing to delete: what is listed are copies made outside Terraform, which this command never "
                  "deletes.\n")
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            out.write("orphans: refusing to delete without confirmation; pass --yes\n")
            return 2
        try:
            answer = input(f"Delete these {len(candidates)} VM(s) and their disks? Type yes to confirm: ")
        except (EOFError, KeyboardInterrupt):
            out.write("\nNothing deleted.\n")
            return 1
        if answer.strip().lower() != "yes":
            out.write("Nothing deleted.\n")
            return 1
    failed = 0
    for orphan in candidates:
        try:
            why = _why_not_now(ops, orphan, args.min_age)
            if why == "already gone":
                out.write(f"{orphan.name}: already gone\n")
                continue
            if why is not None:
                out.write(f"kept {orphan.name}: {why}\n")
                failed += 1
                continue
            ops.delete_backing(orphan.record)
            out.write(f"deleted {orphan.name}\n")
        except Exception as error:  # noqa: BLE001 - report and go on with the others
            out.write(f"could not delete {orphan.name}: {_one_line(error)}\n")
            failed += 1
    return 1 if failed else 0


def _one_line(error: BaseException) -> str:
    """A vSphere fault or any other failure as one line (never a traceback)."""
    from pyVmomi import vmodl

    if isinstance(error, vmodl.MethodFault):
        message = getattr(error, "msg", None) or ""
        return f"vSphere refused the request: {type(error).__name__}{': ' + message if message else ''}"
    text = " ".join(str(error).split())
    return text or type(error).__name__


def main(argv: list[str], out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(
        prog="terraform-provider-vmdk orphans", epilog=USAGE_EPILOG,
        description="List (and with --delete remove) shadow VMs and template snapshots of this provider that "
        "none of the given Terraform states holds.")
    parser.add_argument("--state", action="append", required=True, metavar="FILE",
                        help="a .tfstate file or `terraform show -json` output; repeat for every state that "
                        "uses this vCenter")
    parser.add_argument("--server", help="vCenter host[:port] (default VSPHERE_SERVER)")
    parser.add_argument("--user", help="user (default VSPHERE_USER)")
    parser.add_argument("--datacenter", help="datacenter (needed when the vCenter has several)")
    parser.add_argument("--ca-file", help="PEM CA bundle (default VSPHERE_CA_FILE, else the system CAs)")
    parser.add_argument("--allow-unverified-ssl", action="store_true", help="skip TLS verification (insecure)")
    parser.add_argument("--delete", action="store_true", help="delete what is listed, after a confirmation")
    parser.add_argument("--yes", action="store_true", help="with --delete: do not ask")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--min-age", type=parse_age, default=3600.0, metavar="AGE",
                        help="with --delete: keep objects younger than this (default 1h; e.g. 30m, 2d, 0) — an "
                        "apply may still be making them")
    args = parser.parse_args(argv)
    known = ids_in_state(load_states(args.state))

    from .vsphere.placement.inventory import Inventory
    from .vsphere.volumes.drivers import volume_ops

    try:
        session = _session(args)
    except (ValueError, TypeError) as error:
        sys.stderr.write(f"orphans: {_one_line(error)}\n")
        return 2
    try:
        ops = volume_ops(session, Inventory(session, args.datacenter))
        orphans = find_orphans(ops, known)
        if args.json:
            out.write(json.dumps([{k: v for k, v in o.__dict__.items() if k not in ("record", "primary")}
                                  for o in orphans], indent=2) + "\n")
        elif orphans:
            _table(orphans, out)
        else:
            out.write("No orphans: every shadow VM of this provider belongs to one of the given states.\n")
        if args.delete and orphans:
            return _delete(ops, orphans, args, out)
        return 0
    except KeyboardInterrupt:
        out.write("\norphans: interrupted\n")
        return 130
    except Exception as error:  # noqa: BLE001 - every failure is one line for the user, never a traceback
        sys.stderr.write(f"orphans: {_one_line(error)}\n")
        return 1
    finally:
        try:
            session.logout()
        except Exception:  # noqa: BLE001, S110 - leaving anyway
            pass
