"""Errors of the vsphere layer, after Cinder's ``cinder/volume/drivers/vmware/exceptions.py``.

Every error is a :class:`VMwareDriverError`.  ``str(err)`` is the user-facing message: what went
wrong and, where we know it, what to do about it (the ``hint``).  Construct with an explicit message
(``NoValidDatastore("no datastore has 10 GiB free")``) or with none to get the class default.
Messages never carry credentials: build them from names and morefs only.
"""

from __future__ import annotations


class VMwareDriverError(Exception):
    """Base class.  ``message`` says what failed; ``hint`` says what the user can do."""

    default_message = "vSphere operation failed"
    hint: str | None = None

    def __init__(self, message: str | None = None, *, hint: str | None = None) -> None:
        self.message = message or self.default_message
        if hint is not None:
            self.hint = hint
        super().__init__(self.message)

    def __str__(self) -> str:
        if self.hint and self.hint not in self.message:
            return f"{self.message}. {self.hint}"
        return self.message


class NotFound(VMwareDriverError):
    default_message = "vSphere object not found"


class InvalidDiskType(VMwareDriverError):
    default_message = "invalid disk type"
    hint = "Use one of: thin, thick, eagerZeroedThick"


class InvalidAdapterType(VMwareDriverError):
    default_message = "invalid adapter type"
    hint = "Use one of: lsiLogic, busLogic, lsiLogicsas, paraVirtual, ide"


class ProfileNotFound(NotFound):
    default_message = "storage policy not found"
    hint = "Check the policy name in vCenter (Policies and Profiles > VM Storage Policies)"


class NoValidDatastore(VMwareDriverError):
    default_message = "no valid datastore found"
    hint = ("Free space on a datastore, relax the datastore filter / storage policy, or check that the "
            "datastores are mounted on connected hosts out of maintenance mode")


class ClusterNotFound(NotFound):
    default_message = "compute cluster not found"
    hint = "Check the cluster names in the provider configuration"


class NoValidHost(VMwareDriverError):
    default_message = "no valid host found"
    hint = "Make sure at least one host is connected and not in maintenance mode"


class SnapshotNotFound(NotFound):
    default_message = "snapshot not found"


class VirtualDiskNotFound(NotFound):
    default_message = "virtual disk not found"


class DatacenterNotFound(NotFound):
    default_message = "datacenter not found"
    hint = "Set `datacenter` in the provider configuration to the name of an existing datacenter"


class NoDiskSpace(VMwareDriverError):
    default_message = "insufficient disk space on the datastore"
    hint = "Free space on the datastore or choose another one"


class InvalidVolume(VMwareDriverError):
    default_message = "invalid volume"


class InvalidSnapshot(VMwareDriverError):
    default_message = "invalid snapshot"


class ImageUnacceptable(VMwareDriverError):
    default_message = "image unacceptable"
    hint = "Only VMDK images (streamOptimized, sparse or preallocated) are supported"


class ManageExistingInvalidReference(VMwareDriverError):
    default_message = "invalid reference to an existing disk"
    hint = "Use the form `[datastore] path/disk.vmdk@vm/inventory/path`"


class FolderConflict(VMwareDriverError):
    default_message = "folder path conflicts with an existing inventory object"
    hint = "Choose another folder path or rename the conflicting object"


class TaskFailed(VMwareDriverError):
    """A vSphere task ended in error.  ``fault_type`` is the fault's class name
    (e.g. ``vim.fault.FileAlreadyExists``), ``fault`` the original fault object if any."""

    def __init__(self, fault_type: str = "", message: str | None = None, *, task: str | None = None,
                 fault: object = None, hint: str | None = None) -> None:
        self.fault_type = fault_type
        self.fault = fault
        self.task = task
        text = message or fault_type or "task failed"
        if task:
            text = f"{task} failed: {text}"
        if fault_type and fault_type not in text:
            text = f"{text} ({fault_type})"
        super().__init__(text, hint=hint)


class TaskTimeout(VMwareDriverError):
    default_message = "vSphere task timed out"
    hint = "Raise the operation timeout, or check the task in vCenter's Recent Tasks"

    def __init__(self, message: str | None = None, *, task: str | None = None, timeout: float | None = None,
                 hint: str | None = None) -> None:
        self.task = task
        self.timeout = timeout
        if message is None and task:
            message = f"{task} did not finish within {timeout:g} s" if timeout is not None else f"{task} timed out"
        super().__init__(message, hint=hint)


class ConnectionFailed(VMwareDriverError):
    """Login, TLS or network failure.  The message names the server and the cause; never the password."""

    default_message = "cannot connect to vSphere"

    def __init__(self, server: str | None = None, cause: str | None = None, *, hint: str | None = None,
                 refused: bool = False) -> None:
        self.server = server
        self.cause = cause
        # The server refused these settings (credentials, certificate): trying again cannot help, and failed
        # logins count towards the account's lockout on vCenter.
        self.refused = refused
        if server:
            message = f"cannot connect to vSphere server {server}" + (f": {cause}" if cause else "")
        else:
            message = cause or self.default_message
        super().__init__(message, hint=hint)


class TransferRefused(VMwareDriverError):
    """An HTTP transfer (datastore file, lease device URL) that would carry the session cookie to a place it
    must not go: not HTTPS, or a host vSphere did not name. Refused before anything is sent."""

    default_message = "refused to send the vSphere session to an address vSphere did not name"


class OutcomeUnknown(VMwareDriverError):
    """A request that changes vSphere was sent but no answer came back: vSphere may or may not have acted.

    Never answered by sending the request again; the caller looks the object up by the identity it fixed
    before the call (see ``reconcile``)."""

    default_message = "vSphere did not answer a request that changes the inventory"
    hint = "Run terraform apply again: the provider looks the object up and continues"


class Cancelled(VMwareDriverError):
    """StopProvider (Ctrl-C in Terraform) cancelled the operation."""

    default_message = "the operation was cancelled"


class OperationTimedOut(VMwareDriverError):
    """The operation's time (the resource's timeouts block) ran out."""

    default_message = "the operation ran out of time"
    hint = "Raise the timeout in the resource's timeouts block"


# ------------------------------------------------------------------ task faults mapped to driver errors
# Each is a TaskFailed (fault_type, fault, task) *and* the matching driver error, so callers can catch either.

class TaskNoDiskSpace(TaskFailed, NoDiskSpace):
    """A task failed with vim.fault.NoDiskSpace / InsufficientStorageSpace / InsufficientDisks."""


class FileAlreadyExists(TaskFailed):
    """A task failed with vim.fault.FileAlreadyExists."""

    hint = "Delete or rename the existing file, or choose another path"


class FileNotFound(TaskFailed, NotFound):
    """A task failed with vim.fault.FileNotFound."""


class TaskNotFound(TaskFailed, NotFound):
    """A task failed with ManagedObjectNotFound / vim.fault.NotFound, or the task itself vanished."""
