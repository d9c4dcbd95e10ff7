"""Network mode pieces that need no daemon: generated /etc files, CNI result parsing, the
spec's netns path, the non-root fallback and mode validation."""

from __future__ import annotations

import pytest

from mason.backends.containerd import cni, network
from mason.backends.containerd.network import NetworkProvider, render_hosts, render_resolv_conf
from mason.backends.containerd.spec import Process, build_spec
from mason.ir.errors import MasonError


def write(tmp_path, name: str, text: str) -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_resolv_conf_host_network_is_the_hosts_file(tmp_path) -> None:
    host = write(tmp_path, "resolv", "nameserver 127.0.0.53\nsearch lan\n")
    assert render_resolv_conf(True, host, str(tmp_path / "none")) == "nameserver 127.0.0.53\nsearch lan\n"


def test_resolv_conf_drops_loopback_keeps_the_rest(tmp_path) -> None:
    host = write(tmp_path, "resolv", "nameserver 127.0.0.1\nnameserver 192.0.2.53\nnameserver ::1\n"
                                     "search example.test\noptions ndots:2\n")
    assert render_resolv_conf(False, host, str(tmp_path / "none")) == (
        "nameserver 192.0.2.53\nsearch example.test\noptions ndots:2\n")


def test_resolv_conf_systemd_resolved_stub_reads_upstream(tmp_path) -> None:
    host = write(tmp_path, "stub", "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n")
    upstream = write(tmp_path, "upstream", "nameserver 192.0.2.1\nnameserver 192.0.2.2\nsearch lan\n")
    assert render_resolv_conf(False, host, upstream) == "nameserver 192.0.2.1\nnameserver 192.0.2.2\nsearch lan\n"


def test_resolv_conf_only_loopback_and_no_upstream_uses_defaults(tmp_path) -> None:
    host = write(tmp_path, "stub", "nameserver 127.0.0.53\nsearch lan\n")
    assert render_resolv_conf(False, host, str(tmp_path / "none")) == (
        "search lan\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n")
    assert render_resolv_conf(False, str(tmp_path / "missing"), str(tmp_path / "none")) == (
        "nameserver 8.8.8.8\nnameserver 8.8.4.4\n")


def test_hosts() -> None:
    assert render_hosts("box", [("db", "10.0.0.5")]) == (
        "127.0.0.1\tlocalhost box\n::1\tlocalhost ip6-localhost ip6-loopback\n10.0.0.5\tdb\n")


def test_parse_bridge_result() -> None:
    result = {"cniVersion": "1.0.0",
              "interfaces": [{"name": "mason0", "mac": "aa"}, {"name": "veth1234", "mac": "bb"},
                             {"name": "eth0", "mac": "cc", "sandbox": "/x/netns"}],
              "ips": [{"interface": 2, "address": "10.89.0.7/24", "gateway": "10.89.0.1"}]}
    r = cni.parse_result(result, "eth0")
    assert (r.address, r.gateway, r.host_interface) == ("10.89.0.7/24", "10.89.0.1", "veth1234")


def test_spec_joins_netns_path() -> None:
    spec = build_spec(Process(args=("true",), netns_path="/r/network/x/netns"), "c1")
    assert {"type": "network", "path": "/r/network/x/netns"} in spec["linux"]["namespaces"]
    spec = build_spec(Process(args=("true",)), "c1")
    assert {"type": "network"} in spec["linux"]["namespaces"]


def test_apply_puts_generated_files_first(tmp_path) -> None:
    with NetworkProvider(tmp_path).setup("s", "none") as net:
        p = net.apply(Process(args=("true",)))
        assert (p.network, p.netns_path) == ("none", None)
        assert [m.target for m in p.mounts] == ["/etc/hosts", "/etc/resolv.conf"]
    assert list((tmp_path / "network").iterdir()) == []


def test_not_root_falls_back_to_host_with_warning(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(network.os, "geteuid", lambda: 1000)
    with NetworkProvider(tmp_path).setup("s", "default") as net:
        assert net.mode == "host" and "needs root" in net.warning
        assert net.apply(Process(args=("true",))).network == "host"


def test_unknown_mode_is_an_error(tmp_path) -> None:
    with pytest.raises(MasonError, match="unknown network mode 'bridge'"):
        NetworkProvider(tmp_path).setup("s", "bridge")
