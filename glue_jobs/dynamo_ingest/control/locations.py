"""Where a source object's files go: the one rule the job, the trigger and the callback share.

Uploads arrive under the incoming folder. A loaded file moves to the complete folder, a failed
one to the error folder, each keeping its path below incoming; the rejects file goes to the
error folder under the same path plus ``.rejects.csv``. The folders are disjoint (Terraform
and the three Lambdas' settings, through :func:`settings_problem`, refuse overlapping ones),
so nothing written there is an upload the trigger watches, although a rejects file ends in
``.csv``. An object outside incoming (a run started by hand) is not moved, and its rejects
keep its whole key under the error folder — still outside incoming.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from dynamo_ingest.control.s3_objects import relocate_key, s3_uri

REJECTS_SUFFIX = ".rejects.csv"


# The Lambda environment variable that sets each folder (Terraform's locals.tf passes them).
FOLDER_VARIABLES = {"incoming": "INCOMING_PREFIX", "complete": "COMPLETE_PREFIX",
                    "error": "ERROR_PREFIX"}


@dataclass(frozen=True)
class BucketFolders:
    """The bucket's folders (S3 key prefixes ending in ``/``)."""

    incoming: str = "incoming/"
    complete: str = "complete/"
    error: str = "error/"

    def overlap(self, labels: Mapping[str, str] = FOLDER_VARIABLES) -> str | None:
        """Why the folders ``labels`` names (field → the setting's name) cannot work together,
        or None: when one contains another, a file written there looks like a new upload."""
        for field, label in labels.items():
            for other_field, other_label in labels.items():
                prefix, other = getattr(self, field), getattr(self, other_field)
                if field != other_field and other.startswith(prefix):
                    return (f"{label} {prefix!r} and {other_label} {other!r} overlap: a file "
                            "written under one would look like a new upload under the other; "
                            "use disjoint folders")
        return None


def settings_problem(required: Mapping[str, str], folders: BucketFolders,
                     known: Collection[str] = tuple(FOLDER_VARIABLES)) -> str | None:
    """Why a Lambda's settings cannot work, or None: a required setting (its variable → its
    value) or one of the ``known`` folders is empty, or two of those folders overlap. The one
    check of the trigger, the loader and the callback; each raises the answer as its own
    ``SettingsError``."""
    labels = {name: FOLDER_VARIABLES[name] for name in known}
    values = {**required, **{label: getattr(folders, name) for name, label in labels.items()}}
    empty = next((variable for variable, value in values.items() if not value), None)
    if empty is not None:
        return f"{empty} must not be empty"
    return folders.overlap(labels)


@dataclass(frozen=True)
class SourceLocations:
    """Where one source object's files go (``s3://`` URIs); ``complete`` and ``error`` are
    None for an object outside incoming, which is not ours to move."""

    rejects: str
    complete: str | None
    error: str | None


def source_locations(bucket: str, key: str,
                     folders: BucketFolders | None = None) -> SourceLocations:
    """The rejects, complete and error locations of ``s3://bucket/key``."""
    folders = folders or BucketFolders()
    rejects = s3_uri(bucket, relocate_key(key, folders.incoming, folders.error, REJECTS_SUFFIX))
    if not key.startswith(folders.incoming):
        return SourceLocations(rejects, None, None)
    return SourceLocations(
        rejects,
        s3_uri(bucket, relocate_key(key, folders.incoming, folders.complete)),
        s3_uri(bucket, relocate_key(key, folders.incoming, folders.error)))


def default_rejects_path(bucket: str, key: str, folders: BucketFolders | None = None) -> str:
    """The rejects file of a run not told where: the object's rejects location for S3
    (``bucket`` set), a ``rejects/`` folder beside a local file (``key`` is its path)."""
    if bucket:
        return source_locations(bucket, key, folders).rejects
    path = Path(key)
    return str(path.parent / "rejects" / f"{path.name}{REJECTS_SUFFIX}")
