"""One error hierarchy; each error is also the matching builtin, and says what to do.

    raise StoreMismatchError(f"{path} was extracted with {found}, not {wanted}: re-extract it")

Only the CLI turns these into exit codes and one-line messages.
"""

from __future__ import annotations


class DcsmCacheError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(DcsmCacheError, ValueError):
    """A configuration key or value is wrong (unknown key, bad type, unknown name)."""


class UnknownNameError(DcsmCacheError, KeyError):
    """An unknown benchmark, backbone or scorer name; the message lists the valid ones."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class InputNotFoundError(DcsmCacheError, FileNotFoundError):
    """A file or folder the user pointed at does not exist or lacks an expected file."""


class BadInputError(DcsmCacheError, ValueError):
    """An input file exists but cannot be used (corrupt image, malformed annotation, bad checkpoint)."""


class StoreNotFoundError(DcsmCacheError, FileNotFoundError):
    """No feature store at the given path."""


class StoreMismatchError(DcsmCacheError, ValueError):
    """A store from another backbone, schema version or dataset fingerprint."""


class IncompleteStoreError(DcsmCacheError, RuntimeError):
    """A store whose extraction parts are not all finished (a crash, or a part still running)."""


class DeviceError(DcsmCacheError, RuntimeError):
    """A device was asked for that this machine does not have."""


class BackboneLoadError(DcsmCacheError, RuntimeError):
    """open_clip (or a package under it) failed to build or load a backbone."""


class MissingPackageError(DcsmCacheError, ImportError):
    """A backbone family needs an optional package (an extra of dcsm-cache) that is not installed."""


class PartBusyError(DcsmCacheError, RuntimeError):
    """Another process holds the lock of the store part this one was asked to write."""


class StoreCorruptError(DcsmCacheError, ValueError):
    """A store's bytes changed after they were written: a chunk fails its checksum."""


class DiskFullError(DcsmCacheError, OSError):
    """A write ran out of space (or hit a file size limit); nothing half-written is left."""
