"""FileOp executor semantics against BuildKit v0.32.2 (issue 10 item 19): ``COPY --chmod``
gives the directories it creates its mode (the missing parents of the destination, and a
directory source's destination itself), and the other COPY/ADD/WORKDIR forms leave the same
files, modes and owners as buildkitd. Both images are read from their OCI archives
(tests/conformance/rootfs.py) and compared path by path."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from tests.conformance.rootfs import diff_trees, read_image
from tests.integration.conftest import write

pytestmark = pytest.mark.integration


def _tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, mode, data in (("t/", 0o700, None), ("t/f", 0o604, b"in the tar\n")):
            ti = tarfile.TarInfo(name.rstrip("/"))
            ti.mode, ti.uid, ti.gid, ti.mtime = mode, 1234, 5678, 1_700_000_000
            if data is None:
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            else:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


DOCKERFILE = """\
FROM {base} AS made
RUN mkdir -p /m/d/e && echo x > /m/d/f && ln /m/d/f /m/d/hard && ln -s d /m/dl && ln -s /m/d/f /m/abs \\
 && chown -R 1000:1000 /m/d && chmod 2750 /m/d && chmod 4711 /m/d/f && mkfifo /m/fifo \\
 && echo y > /m/y && chown 65534:1000 /m/y && chmod 0 /m/y

FROM {base}
COPY --from=made /m /fromstage/
COPY --from=made /m/dl /follow-dir/
COPY --from=made /m/abs /follow-abs
COPY --from=made --chown=app /m/d /chowned/
COPY --from=made --chmod=640 /m/y /m/dl /multi/new/
COPY --link --from=made /m/ /linkm/
COPY <<EOF /heredoc/new/file
hello
EOF
COPY --chmod=711 <<EOF /heredoc2/new/
hi
EOF
COPY --parents dir/sub/b.txt /parents/
RUN mkdir /existing && chmod 0700 /existing && ln -s /existing /via-link
COPY --chmod=640 a.txt /existing/x/a
COPY a.txt /via-link/through/
COPY --chmod=640 dir /existing/
USER app
WORKDIR /as-app/sub
COPY a.txt .
USER root
COPY --chmod=640 a.txt /new/a
COPY --chmod=640 a.txt /deep/er/path/
COPY --chmod=750 dir /cdir/
COPY --link --chmod=700 dir /l/dir
COPY --chmod=u=rwX,go=rX dir /sym/bolic/
COPY --chmod=0750 a.txt /tmp/new/x
COPY --chmod=go-rx a.txt /ms/new/a
COPY --chmod=go-rx dir /msdir/
COPY --chmod=a+w dir /msdir2
COPY --chmod=4755 a.txt /suid/new/a
COPY --chmod=2775 dir /sgid/new/
COPY --chmod=777 a.txt /u777/new/a
COPY --chmod=755 suid /suid2/new/
COPY suid /suid3/
COPY --chmod=600 a.txt /tmp/y
COPY --chown=app:app a.txt /own/new/a
COPY --chown=1000 --chmod=600 dir /owned/dir
COPY --link --chown=65534:65534 dir /linkowned/
COPY a.txt /plain/new/
COPY dir /plaindir
COPY --link dir /linkdir/sub/
COPY --chmod=711 dir/sub /only-sub
ADD --chmod=640 t.tar /untar/here/
ADD t.tar /untar2/
COPY --exclude=*.log dir /excl/
WORKDIR /wd/sub
COPY a.txt .
WORKDIR /wd2
COPY --chmod=700 a.txt rel/
"""


def _context(tmp_path, base):
    ctx = write(tmp_path / "ctx", {
        "Dockerfile": DOCKERFILE.format(base=base), "a.txt": "a\n", "t.tar": _tar(),
        "dir/sub/b.txt": "b\n", "dir/x.sh": "#!/bin/sh\n", "dir/keep.log": "log\n", "suid": "s\n",
    }, modes={"suid": 0o4755, "a.txt": 0o644, "dir/x.sh": 0o755, "dir/sub/b.txt": 0o600, "dir/keep.log": 0o664})
    os.symlink("sub/b.txt", ctx / "dir" / "link")
    (ctx / "dir" / "empty").mkdir(mode=0o700)
    for d in ("dir", "dir/sub", "dir/empty"):
        os.chmod(ctx / d, 0o755 if d != "dir/empty" else 0o700)
    return ctx


def test_copy_modes_and_owners_as_buildkit(build_env, buildkitd, tmp_path):
    ctx = _context(tmp_path, build_env.base)
    mine, theirs = tmp_path / "mason.tar", tmp_path / "buildkit.tar"
    build_env.build(ctx, outputs=(f"type=oci,dest={mine}",))
    buildkitd.build_dockerfile(ctx, f"type=oci,dest={theirs}")
    a, b = read_image(mine).tree, read_image(theirs).tree
    diffs = diff_trees(a, b)
    assert not diffs, "\n".join(diffs)
    # what item 19 is about, spelled out
    assert a["/new"].mode == 0o640 and a["/new/a"].mode == 0o640
    assert a["/l/dir"].mode == 0o700
    # hardlinks made by a RUN stay hardlinks through COPY --from, in both
    assert {a["/fromstage/d/f"].target, a["/fromstage/d/hard"].target} == {"", "hardlink to /fromstage/d/f"} or \
        {a["/fromstage/d/f"].target, a["/fromstage/d/hard"].target} == {"", "hardlink to /fromstage/d/hard"}
