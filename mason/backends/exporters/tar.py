"""``type=tar``: the final root filesystem as one tar (what ``type=local`` writes, as an
archive): the mounted snapshot written against nothing by :mod:`.difftar`, so entries are
sorted, owners numeric and, with ``SOURCE_DATE_EPOCH``, mtimes clamped. A multi-platform build
writes each platform's filesystem under a directory of its own (:func:`export_tars`)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import BinaryIO

from mason.backends.containerd.client import Client
from mason.backends.exporters.archive import atomic_output
from mason.backends.exporters.difftar import write_diff, write_trees
from mason.backends.exporters.layer import viewed


def export_tar(client: Client, snapshot: str | None, dest: str | os.PathLike[str] | BinaryIO, *,
               source_date_epoch: int | None = None) -> None:
    """Write the filesystem of committed ``snapshot`` (None: empty) as a tar at ``dest``."""
    with viewed(client, snapshot) as root, atomic_output(dest) as out:
        write_diff(None, root, out, epoch=source_date_epoch)


def export_tars(client: Client, snapshots: Sequence[tuple[str, str | None]],
                dest: str | os.PathLike[str] | BinaryIO, *, source_date_epoch: int | None = None) -> None:
    """One tar at ``dest`` holding each committed snapshot's filesystem under its directory
    (``snapshots``: ``(dirname, snapshot)`` pairs, None: empty)."""
    with contextlib.ExitStack() as stack:
        roots = [(name, stack.enter_context(viewed(client, snap))) for name, snap in snapshots]
        out = stack.enter_context(atomic_output(dest))
        write_trees(roots, out, epoch=source_date_epoch)
