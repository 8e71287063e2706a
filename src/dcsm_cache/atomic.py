"""Every output is written atomically: to a temporary file beside it, then renamed over it.

    write_json({"accuracy": 0.9}, "results/shapes-clip/shapes_spatial/dcsm.json")

A reader, or a rerun after a crash, sees the old file or the new one, never half of one; a failed
write leaves no temporary file behind, and a full disk is a DiskFullError naming the file.
Manifests, store markers, checkpoints, results and reports all go through here.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

from .errors import DiskFullError

__all__ = ["atomic_path", "save_torch", "write_bytes", "write_json", "write_text"]


@contextlib.contextmanager
def atomic_path(out: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside `out` to write to; it replaces `out` when the block ends without error."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, out)
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            raise
        raise DiskFullError(
            f"no space left writing {out} ({os.strerror(err.errno)}); it was left as it was: free space and rerun"
        ) from err
    finally:
        tmp.unlink(missing_ok=True)


def write_text(out: str | os.PathLike, text: str) -> Path:
    with atomic_path(out) as tmp:
        tmp.write_text(text)
    return Path(out)


def write_bytes(out: str | os.PathLike, data: bytes | str) -> Path:
    """Bytes as they are; a str as UTF-8."""
    with atomic_path(out) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    return Path(out)


def write_json(obj: Any, out: str | os.PathLike, indent: int | None = 1) -> Path:
    return write_text(out, json.dumps(obj, indent=indent))


def save_torch(obj: Any, out: str | os.PathLike) -> Path:
    """torch.save, so that the same contents give the same bytes (and sha256) on every run: through a
    file handle (the zip's inner folder is then `archive`, not the temporary file's name), with every
    string interned (pickle refers back to a string it has seen by identity, not by value)."""
    import torch

    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        torch.save(_interned(obj), f)
    return Path(out)


def _interned(obj: Any) -> Any:
    if isinstance(obj, str):
        return sys.intern(obj)
    if isinstance(obj, dict):
        return type(obj)((_interned(k), _interned(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)) and type(obj) in (list, tuple):
        return type(obj)(map(_interned, obj))
    return obj
