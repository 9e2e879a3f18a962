"""The provider block: how to reach vSphere and the placement policy for volumes.

Settings fall back to the environment variables terraform-provider-vsphere users already have.
Connecting is ``client``'s business (it starts in the background once configured).
"""

from __future__ import annotations

import os
import re
from typing import Any

from .. import __version__
from ..framework.diagnostics import Diagnostics
from ..framework.resource import DataSource, Provider, RequestContext, Resource
from ..framework.schema import Attribute, Schema, schema
from ..framework.secrets import set_secrets
from ..framework.types import Bool, List, Number, String
from ..framework.unknowns import is_unknown
from ..framework.validators import AtLeast, NotEmpty, OneOf, ValidRegex, WholeNumber
from ..vsphere.connection.config import ConnectionConfig
from .attachment import AttachmentResource
from .backups import BackupResource, RestoreResource
from .client import DEFAULT_DATASTORE_TYPES, ProviderSettings, VSphereClient
from .data_datastore_cluster import DatastoreClusterDataSource
from .data_datastores import DatastoresDataSource
from .data_volume import VolumeDataSource
from .data_volume_stats import VolumeStatsDataSource
from .disk_types import DiskTypesDataSource
from .export import ExportResource
from .revert import RevertResource
from .snapshot import SnapshotResource
from .volume import VolumeResource

__all__ = ["VmdkProvider", "PROVIDER_SCHEMA"]

PROVIDER_SCHEMA: Schema = schema(
    {
        "vsphere_server": Attribute(
            String, optional=True, validators=(NotEmpty(),), env_fallback=("VSPHERE_SERVER",),
            description="vCenter or ESXi host name, as `host` or `host:port` (default port 443). "
            "Environment: `VSPHERE_SERVER`.",
        ),
        "user": Attribute(
            String, optional=True, env_fallback=("VSPHERE_USER",),
            description="User name for vSphere. Environment: `VSPHERE_USER`.",
        ),
        "password": Attribute(
            String, optional=True, sensitive=True, env_fallback=("VSPHERE_PASSWORD",),
            description="Password for vSphere. Environment: `VSPHERE_PASSWORD`.",
        ),
        "allow_unverified_ssl": Attribute(
            Bool, optional=True, env_fallback=("VSPHERE_ALLOW_UNVERIFIED_SSL",),
            description="Skip TLS certificate verification (insecure; for labs only). Default `false`. "
            "Environment: `VSPHERE_ALLOW_UNVERIFIED_SSL`.",
        ),
        "ca_file": Attribute(
            String, optional=True, env_fallback=("VSPHERE_CA_FILE",),
            description="PEM file of CA certificates that sign the server's certificate; default: the "
            "system CAs. Environment: `VSPHERE_CA_FILE`.",
        ),
        "datacenter": Attribute(
            String, optional=True,
            description="Datacenter holding the volumes; required only when the server has several.",
        ),
        "cluster_names": Attribute(
            List(String), optional=True,
            description="Restrict placement to datastores mounted on hosts of these clusters.",
        ),
        "volume_folder": Attribute(
            String, optional=True, validators=(NotEmpty(),),
            description="VM folder (path below the datacenter's VM folder) for the shadow VMs. Default `Volumes`. "
            "Unused on a standalone ESXi host, which has no folders (the shadow VMs go into its VM folder; plans "
            "warn when it is set).",
        ),
        "datastore_regex": Attribute(
            String, optional=True, validators=(ValidRegex(),),
            description="Only datastores whose name matches this regular expression (from its start, as "
            "Python's `re.match`) hold volumes, whether placement picks them or a volume names one.",
        ),
        "datastore_types": Attribute(
            List(String), optional=True, validators=(NotEmpty(),),
            description="Datastore types (`DatastoreSummary.type`) placement may use, case-insensitive. "
            "Default: Cinder's `[\"vmfs\", \"nfs\", \"nfs41\", \"vsan\", \"vvol\"]`. A vCenter simulator "
            "(vcsim) reports its datastores as `OTHER`: add `\"OTHER\"` to run against one.",
        ),
        "datastore_cluster": Attribute(
            String, optional=True, validators=(NotEmpty(),),
            description="Datastore cluster (StoragePod) for volumes that name neither `datastore` nor "
            "`datastore_cluster`, held like the volume's own setting: new volumes are created in it, and a volume "
            "outside it (moved out, or made before the default was set) is planned to move into it (a vCenter "
            "feature: an error on a standalone ESXi host).",
        ),
        "datastore_cluster_mode": Attribute(
            String, optional=True, validators=(OneOf(("sdrs", "members")),),
            description="Default `datastore_cluster_mode` of volumes: `sdrs` (Storage DRS recommends, the "
            "placement rules veto) or `members` (the provider ranks the members itself). Default `sdrs`.",
        ),
        "snapshot_format": Attribute(
            String, optional=True, validators=(OneOf(("template", "COW")),),
            description="Default format of `vmdk_snapshot`: `template` (a full copy that outlives its volume; "
            "Cinder's default) or `COW` (a VM snapshot). Default `template`.",
        ),
        "api_retry_count": Attribute(
            Number, optional=True, validators=(WholeNumber(), AtLeast(0)),
            description="Retries of a vSphere call on transient faults. Default `10`.",
        ),
        "task_poll_interval": Attribute(
            Number, optional=True, validators=(AtLeast(0.01),),
            description="Seconds between polls of a running vSphere task. Default `0.5`.",
        ),
        "api_timeout": Attribute(
            Number, optional=True, validators=(AtLeast(1),),
            description="Seconds to wait for vSphere to answer one request before the request counts as lost "
            "(reads are sent again; a lost write is looked up before anything else). Default `300`. Whole "
            "operations are bounded by each resource's `timeouts` block.",
        ),
        "persist_session": Attribute(
            Bool, optional=True, env_fallback=("VSPHERE_PERSIST_SESSION",),
            description="Keep the vSphere session in a private file (mode 0600 in a 0700 directory; the password is "
            "never written) so that the provider processes of a Terraform command, and the commands after it, log "
            "in once instead of at every launch. A saved session is resumed only while vCenter says it is logged "
            "in as `user`; otherwise a new login replaces it. A saved session outlives a password change until "
            "vCenter ends it (idle timeout, or an administrator): to stop using it, set `false` (the file is then "
            "neither read nor written, and every launch logs in and out) or delete the file, or the whole "
            "`session_path` directory. Default `true`. "
            "Environment: `VSPHERE_PERSIST_SESSION`.",
        ),
        "session_path": Attribute(
            String, optional=True, validators=(NotEmpty(),), env_fallback=("VMDK_SESSION_PATH",),
            description="Directory of the saved sessions (created 0700, and not used when others can read it; one "
            "file per server and user). Deleting it forgets every saved session. Default: "
            "`$XDG_CACHE_HOME/terraform-provider-vmdk/sessions` (`~/.cache/...`). Environment: "
            "`VMDK_SESSION_PATH`.",
        ),
    },
    description="Manages VMware VMDK volumes and their snapshots the way OpenStack Cinder's VMDK driver "
    "does: each volume is a VMDK in a never-powered-on shadow VM.",
)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _setting(config: dict[str, Any], name: str) -> Any:
    value = config.get(name)
    if value is not None:
        return value
    for env in PROVIDER_SCHEMA.attributes[name].env_fallback:
        if env in os.environ:
            return os.environ[env]
    return None


class VmdkProvider(Provider):
    type_name = "vmdk"
    version = __version__

    def __init__(self, extra_resources: list[Resource] | None = None,
                 extra_data_sources: list[DataSource] | None = None) -> None:
        self._extra_resources = extra_resources or []
        self._extra_data_sources = extra_data_sources or []
        self.client: VSphereClient | None = None

    def schema(self) -> Schema:
        return PROVIDER_SCHEMA

    def resources(self) -> list[Resource]:
        return [VolumeResource(), SnapshotResource(), ExportResource(), BackupResource(), RestoreResource(),
                RevertResource(), AttachmentResource(), *self._extra_resources]

    def data_sources(self) -> list[DataSource]:
        return [DiskTypesDataSource(), VolumeDataSource(), DatastoresDataSource(), DatastoreClusterDataSource(),
                VolumeStatsDataSource(),
                *self._extra_data_sources]

    def configure(self, config: dict[str, Any], ctx: RequestContext) -> VSphereClient | None:
        diags = ctx.diagnostics
        if any(is_unknown(v) for v in config.values()):
            diags.warning(
                "Provider configuration not known yet",
                "Some provider settings depend on values known only after apply; vSphere operations "
                "cannot run until they are known.",
            )
            return None
        settings = self._settings(config, diags)
        if settings is None:
            return None
        set_secrets([settings.connection.password])  # this configuration's secrets replace any earlier
        self.client = VSphereClient(settings)
        self.client.connect_in_background()
        return self.client

    def _settings(self, config: dict[str, Any], diags: Diagnostics) -> ProviderSettings | None:
        server = _setting(config, "vsphere_server")
        user = _setting(config, "user")
        password = _setting(config, "password")
        for name, value, env in (("vsphere_server", server, "VSPHERE_SERVER"), ("user", user, "VSPHERE_USER"),
                                 ("password", password, "VSPHERE_PASSWORD")):
            if value in (None, ""):
                diags.error(
                    f"Missing {name}",
                    f"Set {name} in the provider block or the {env} environment variable.",
                    name,
                )
        unverified = _setting(config, "allow_unverified_ssl")
        if isinstance(unverified, str):
            text = unverified.strip().lower()
            if text not in _TRUE | _FALSE:
                diags.error("Invalid VSPHERE_ALLOW_UNVERIFIED_SSL", f"Expected true or false, got {unverified!r}.",
                            "allow_unverified_ssl")
            unverified = text in _TRUE
        persist = _setting(config, "persist_session")
        if isinstance(persist, str):
            text = persist.strip().lower()
            if text not in _TRUE | _FALSE:
                diags.error("Invalid VSPHERE_PERSIST_SESSION", f"Expected true or false, got {persist!r}.",
                            "persist_session")
            persist = text in _TRUE
        ca_file = _setting(config, "ca_file")
        if ca_file and not os.path.isfile(ca_file):
            diags.error("CA file not found", f"ca_file {ca_file!r} does not exist or is not a file.", "ca_file")
        regex = config.get("datastore_regex")
        if regex is not None:
            try:
                re.compile(regex)
            except re.error as exc:
                diags.error("Invalid regular expression", f"datastore_regex: {exc}.", "datastore_regex")
        if diags.has_errors:
            return None
        try:
            connection = ConnectionConfig(
                server=server, user=user, password=password, allow_unverified_ssl=bool(unverified),
                ca_file=ca_file or None,
                api_retry_count=int(config["api_retry_count"]) if config.get("api_retry_count") is not None else 10,
                task_poll_interval=(float(config["task_poll_interval"])
                                    if config.get("task_poll_interval") is not None else 0.5),
                api_timeout=float(config["api_timeout"]) if config.get("api_timeout") is not None else 300.0,
                persist_session=True if persist is None else bool(persist),
                session_path=_setting(config, "session_path") or None,
            )
        except ValueError as exc:
            diags.error("Invalid vsphere_server", str(exc), "vsphere_server")
            return None
        return ProviderSettings(
            connection=connection,
            datacenter=config.get("datacenter"),
            cluster_names=tuple(config.get("cluster_names") or ()),
            volume_folder=config.get("volume_folder") or "Volumes",
            volume_folder_set=config.get("volume_folder") is not None,
            datastore_regex=regex,
            snapshot_format=config.get("snapshot_format") or "template",
            datastore_types=tuple(t.lower() for t in config.get("datastore_types") or DEFAULT_DATASTORE_TYPES),
            datastore_cluster=config.get("datastore_cluster"),
            datastore_cluster_mode=config.get("datastore_cluster_mode") or "sdrs",
        )

    def stop(self) -> None:
        pass

    def shutdown(self) -> None:
        if self.client is not None:
            self.client.close()
