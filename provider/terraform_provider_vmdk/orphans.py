"""``terraform-provider-vmdk orphans``: shadow VMs and templates of ours that no Terraform state knows.

A provider that only ever writes with its identity fixed first leaves nothing behind — but older versions,
a killed process or a state someone deleted can. This command reads the states given (``.tfstate`` files or
``terraform show -json`` output), lists every VM carrying our marks whose volume or snapshot id none of them
holds (and any extra VM beside a volume a state does hold: a duplicate or an interrupted retype's copy),
and with ``--delete`` removes them after a confirmation. It refuses to run without a state: with no state,
every volume would look orphaned.

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
    users: tuple[str, ...] = ()  # VMs that have its disk attached: never deleted
    record: Any = None  # the Backing


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
    """Every VM of ours that none of the states holds, and the extra VMs beside the volumes they do hold."""
    from .vsphere.specs import GiB

    index = ops.load_index()
    found: list[Orphan] = []

    def entry(record: Any, kind: str, ident: str, reason: str) -> Orphan:
        created = record.create_date.isoformat() if record.create_date is not None else "unknown"
        return Orphan(ident, kind, record.name, record.datastore_name or "", round(record.size_bytes / GiB, 3),
                      created, reason, tuple(index.users_of(record)), record)

    for volume_id in sorted(index.volumes):
        choice = index.choice(volume_id)
        records = [r for r in (choice.primary, *choice.leftovers) if r is not None]
        if volume_id.lower() not in known.volumes:
            found.extend(entry(r, "volume", volume_id, "in no state") for r in records)
        else:
            found.extend(entry(r, "volume", volume_id, "beside the volume's backing (duplicate or interrupted "
                               "retype)") for r in choice.leftovers)
    for snapshot_id, record in sorted(index.templates.items()):
        if snapshot_id.lower() not in known.snapshots:
            found.append(entry(record, "snapshot", snapshot_id, "in no state"))
    return found


def _table(orphans: list[Orphan], out: TextIO) -> None:
    headers = ("ID", "KIND", "NAME", "DATASTORE", "SIZE_GB", "CREATED", "WHY")
    rows = [(o.id, o.kind, o.name, o.datastore, f"{o.size_gb:g}", o.created, o.reason) for o in orphans]
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=True)]
    for row in (headers, *rows):
        out.write("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")


def _session(args: argparse.Namespace) -> Any:
    from .vsphere.config import ConnectionConfig
    from .vsphere.session import Session

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


def _delete(ops: Any, orphans: list[Orphan], args: argparse.Namespace, out: TextIO) -> int:
    if not args.yes:
        if not sys.stdin.isatty():
            out.write("orphans: refusing to delete without confirmation; pass --yes\n")
            return 2
        answer = input(f"Delete these {len(orphans)} VM(s) and their disks? Type yes to confirm: ")
        if answer.strip().lower() != "yes":
            out.write("Nothing deleted.\n")
            return 1
    failed = 0
    for orphan in orphans:
        if orphan.users:
            out.write(f"kept {orphan.name}: its disk is attached to {', '.join(orphan.users)}\n")
            failed += 1
            continue
        try:
            ops.delete_backing(orphan.record)
            out.write(f"deleted {orphan.name}\n")
        except Exception as error:  # noqa: BLE001 - report and go on with the others
            out.write(f"could not delete {orphan.name}: {error}\n")
            failed += 1
    return 1 if failed else 0


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
    args = parser.parse_args(argv)
    known = ids_in_state(load_states(args.state))

    from .vsphere.exceptions import VMwareDriverError
    from .vsphere.inventory import Inventory
    from .vsphere.volumeops import VolumeOps

    session = _session(args)
    try:
        ops = VolumeOps(session, Inventory(session, args.datacenter))
        orphans = find_orphans(ops, known)
        if args.json:
            out.write(json.dumps([{k: v for k, v in o.__dict__.items() if k != "record"} for o in orphans],
                                 indent=2) + "\n")
        elif orphans:
            _table(orphans, out)
        else:
            out.write("No orphans: every shadow VM of this provider belongs to one of the given states.\n")
        if args.delete and orphans:
            return _delete(ops, orphans, args, out)
        return 0
    except VMwareDriverError as error:
        out.write(f"orphans: {error}\n")
        return 1
    finally:
        session.logout()
