"""The text form: golden output for a fixed graph and a corpus file."""

from __future__ import annotations

from pathlib import Path

from mason.ir.codec import decode_definition
from mason.ir.text import format_graph
from tests.ir.strategies import fixed_graph

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "buildkit-llb"

FIXED = """\
%0 = source "docker-image://docker.io/library/busybox:latest" @linux/arm64/v8 constraints=[]
%1 = source "local://context" {"local.excludepatterns": "[\\"*.o\\"]"} constraints=[]
%2 = exec %0, %1 ["/bin/sh","-c","make"] env=["PATH=/bin"] cwd="/src" user="1000" valid_exit_codes=[0,1] mounts=[/:%0 →0, /ctx:%1 sel="/sub" ro, /tmp:tmpfs(), /run/s:secret(id="s",mode=0o400)] network=none @linux/arm64/v8 constraints=[]
%3 = file %2 [copy(scratch, %2) "/src/app" "/app" owner=0:app@%2, symlink($0) "/app" "/bin/app" →0] @linux/arm64/v8 constraints=[]
%4 = merge %0, %3 @linux/arm64/v8 constraints=[]
%5 = config %4 "EXPOSE 80/tcp" add(ExposedPorts,{"80/tcp":{}})
%6 = diff %0, %4 lower=%0 upper=%4 @linux/arm64/v8 constraints=[]
output app = %5 config={"config":{"Cmd":["/bin/app"]}}
output layer = %6
"""


def test_fixed_graph_golden() -> None:
    assert format_graph(fixed_graph()) == FIXED


CACHEMOUNT = """\
%0 = source "docker-image://127.0.0.1:5000/library/busybox@sha256:a026ada719a4f43dacd393a814a0280695a376827a3c2234c09888fd57d7625c" @linux/amd64 constraints=[]
%1 = exec %0 ["/bin/sh","-c","echo cached >> /root/.cache/log && cat /root/.cache/log"] env=["PATH=/bin:/usr/bin:/sbin:/usr/sbin"] cwd="/" rmstubs mounts=[/:%0 →0, /root/.cache:cache(id="/pkgcache",locked)] @linux/amd64 constraints=[]
%2 = exec %0 ["/bin/sh","-c","mkdir -p /deps && echo dep > /deps/d.txt"] env=["PATH=/bin:/usr/bin:/sbin:/usr/sbin"] cwd="/" rmstubs mounts=[/:%0 →0] @linux/amd64 constraints=[]
%3 = exec %1, %2 ["/bin/sh","-c","cp /mnt/deps/d.txt /scratch/ && cp /scratch/d.txt /d.txt"] env=["PATH=/bin:/usr/bin:/sbin:/usr/sbin"] cwd="/" rmstubs mounts=[/:%1 →0, /mnt/deps:%2 sel="/deps" ro, /scratch:tmpfs()] @linux/amd64 constraints=[]
%4 = exec %3 ["/bin/sh","-c","ls /var/cache/app"] env=["PATH=/bin:/usr/bin:/sbin:/usr/sbin"] cwd="/" rmstubs mounts=[/:%3 →0, /var/cache/app:cache(id="//var/cache/app",shared)] network=none @linux/amd64 constraints=[]
output default = %4
"""


def test_corpus_golden() -> None:
    assert format_graph(decode_definition((CORPUS / "cachemount.llb").read_bytes())) == CACHEMOUNT


def test_metadata_comment() -> None:
    text = format_graph(decode_definition((CORPUS / "metadata.llb").read_bytes()), metadata=True)
    assert '# description=[["llb.customname","[internal] load build context"]]' in text
