"""``type=tar``: the final root filesystem as one tar (what ``type=local`` writes, as an
archive): the mounted snapshot written against nothing by :mod:`.difftar`, so entries are
sorted, owners numeric and, with ``SOURCE_DATE_EPOCH``, mtimes clamped."""

from __future__ import annotations

import os
from typing import BinaryIO

from mason.backends.containerd.client import Client
from mason.backends.exporters.archive import atomic_output
from mason.backends.exporters.difftar import write_diff
from mason.backends.exporters.layer import viewed


def export_tar(client: Client, snapshot: str | None, dest: str | os.PathLike[str] | BinaryIO, *,
               source_date_epoch: int | None = None) -> None:
    """Write the filesystem of committed ``snapshot`` (None: empty) as a tar at ``dest``."""
    with viewed(client, snapshot) as root, atomic_output(dest) as out:
        write_diff(None, root, out, epoch=source_date_epoch)
