"""The run's own output files (``--report_path``, ``--rejects_path``) checked before a load
starts: found at the end, a load would have written every item and then lost its report or
its rejects."""

from __future__ import annotations

import tempfile
from pathlib import Path

from dynamo_ingest.control.storage import is_s3
from dynamo_ingest.core.arguments import JobArguments
from dynamo_ingest.core.errors import ArgumentError


def refuse_unwritable_outputs(args: JobArguments) -> None:
    """Refuse, before anything is loaded, a local ``--report_path`` or ``--rejects_path``
    whose folder cannot take the file (a file in the way, no permission, a read-only or
    immutable folder): found at the end, a load would have written every item and then
    lost its report or its rejects. ``s3://`` paths are checked by their own errors."""
    for option, path in (("--report_path", args.report_path),
                         ("--rejects_path", args.rejects_path)):
        if path and not is_s3(path):
            problem = _unwritable(Path(path))
            if problem:
                raise ArgumentError(f"{option} {path}: expected a file that can be written, "
                                    f"found {problem}: choose another path, or fix the "
                                    "folder's permissions")


def _unwritable(path: Path) -> str | None:
    """Why a file cannot be created at ``path`` (tried for real: root ignores the mode
    bits but not an immutable folder), or None."""
    if path.is_dir():
        return "a directory of that name"
    if path.is_file() and _immutable(path):
        return ("an immutable or append-only file of that name, which cannot be replaced "
                "(lsattr shows it; chattr -i / -a clears it)")
    # The nearest folder that exists is where the first missing folder (or the file) would
    # be created; it is probed, so a run that fails early leaves no folder behind.
    folder = next(p for p in (path.parent.absolute(), *path.parent.absolute().parents)
                  if p.exists())
    if not folder.is_dir():
        return f"{folder}, a file, not a directory"
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{path.name}.", suffix=".probe"):
            pass
    except OSError as err:
        return f"{folder} refusing a new file ({err.strerror or err})"
    return None


# Linux's FS_IOC_GETFLAGS (_IOR('f', 1, long)) and its immutable and append-only flags: such a
# file cannot be replaced even by root, while its mode bits say nothing of it.
_FS_IOC_GETFLAGS = 0x80086601
_IMMUTABLE_OR_APPEND = 0x10 | 0x20


def _immutable(path: Path) -> bool:
    """True when ``path`` carries the immutable or append-only attribute; False where the
    file system cannot say (the write at the end then reports it)."""
    try:
        import fcntl
        import struct

        with open(path, "rb") as handle:
            raw = fcntl.ioctl(handle.fileno(), _FS_IOC_GETFLAGS, struct.pack("l", 0))
    except (OSError, ImportError):
        return False
    return bool(struct.unpack("l", raw)[0] & _IMMUTABLE_OR_APPEND)


def failure_reason(err: BaseException) -> str:
    """An error's reason without its errno prefix (``[Errno 20] Not a directory: 'x'``)."""
    if isinstance(err, OSError) and err.strerror:
        return f"{err.strerror} ({err.filename})" if err.filename else err.strerror
    return str(err)
