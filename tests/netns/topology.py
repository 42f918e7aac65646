"""A public relay and two homes, each behind its own NAT (iptables MASQUERADE), built from
network namespaces, veth pairs and a bridge. Only these namespaces carry the traffic.

    home1 (192.168.1.2) - nat1 (192.168.1.1 | 10.77.0.11) -+
                                                             +- wan bridge - relay (10.77.0.1)
    home2 (192.168.2.2) - nat2 (192.168.2.1 | 10.77.0.12) -+
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field

RELAY_IP = "10.77.0.1"


def available() -> tuple[bool, str]:
    if os.name != "posix" or not hasattr(os, "geteuid") or os.geteuid() != 0:
        return False, "needs root (Linux network namespaces)"
    for prog in ("ip", "iptables"):
        if not shutil.which(prog):
            return False, f"'{prog}' is not installed (apt-get install iproute2 iptables)"
    probe = f"grove-probe-{os.getpid()}"
    ok = subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode == 0
    if ok:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
        return True, ""
    return False, "'ip netns add' is not permitted here"


def _sh(*cmd: str) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()}")


@dataclass
class _Namespaces:
    tag: str = field(default_factory=lambda: f"g{os.getpid() % 100000}")

    def ns(self, name: str) -> str:
        return f"{self.tag}-{name}"

    def exec_prefix(self, name: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns(name)]


@dataclass
class NatTopology(_Namespaces):

    def _in(self, name: str, *cmd: str) -> None:
        _sh(*self.exec_prefix(name), *cmd)

    def up(self) -> NatTopology:
        t = self.tag
        for n in ("wan", "relay", "nat1", "nat2", "home1", "home2"):
            _sh("ip", "netns", "add", self.ns(n))
            self._in(n, "ip", "link", "set", "lo", "up")
        self._in("wan", "ip", "link", "add", "br0", "type", "bridge")
        self._in("wan", "ip", "link", "set", "br0", "up")

        def wire(a_ns: str, a_if: str, b_ns: str, b_if: str) -> None:
            tmp_a, tmp_b = f"{t}{a_if}", f"{t}{b_if}"  # unique in the root namespace
            _sh("ip", "link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b)
            _sh("ip", "link", "set", tmp_a, "netns", self.ns(a_ns))
            _sh("ip", "link", "set", tmp_b, "netns", self.ns(b_ns))
            self._in(a_ns, "ip", "link", "set", tmp_a, "name", a_if)
            self._in(b_ns, "ip", "link", "set", tmp_b, "name", b_if)
            self._in(a_ns, "ip", "link", "set", a_if, "up")
            self._in(b_ns, "ip", "link", "set", b_if, "up")

        wire("relay", "eth0", "wan", "pr")
        self._in("wan", "ip", "link", "set", "pr", "master", "br0")
        self._in("relay", "ip", "addr", "add", f"{RELAY_IP}/24", "dev", "eth0")
        for i in (1, 2):
            nat, home = f"nat{i}", f"home{i}"
            wire(nat, "wan0", "wan", f"p{i}")
            self._in("wan", "ip", "link", "set", f"p{i}", "master", "br0")
            self._in(nat, "ip", "addr", "add", f"10.77.0.1{i}/24", "dev", "wan0")
            wire(home, "eth0", nat, "lan0")
            self._in(nat, "ip", "addr", "add", f"192.168.{i}.1/24", "dev", "lan0")
            self._in(home, "ip", "addr", "add", f"192.168.{i}.2/24", "dev", "eth0")
            self._in(home, "ip", "route", "add", "default", "via", f"192.168.{i}.1")
            self._in(nat, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            self._in(nat, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "wan0",
                     "-j", "MASQUERADE")
            # a home router: replies come back in, nothing new does
            self._in(nat, "iptables", "-A", "FORWARD", "-i", "wan0", "-m", "conntrack",
                     "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
            self._in(nat, "iptables", "-A", "FORWARD", "-i", "wan0", "-j", "DROP")
        return self

    def home_ip(self, i: int) -> str:
        return f"192.168.{i}.2"

    def down(self) -> None:
        for n in ("home1", "home2", "nat1", "nat2", "relay", "wan"):
            subprocess.run(["ip", "netns", "del", self.ns(n)], capture_output=True)


@dataclass
class LanTopology(_Namespaces):
    """Two computers on one home network: namespaces `a` and `b` on a bridge, nothing else."""

    tag: str = field(default_factory=lambda: f"l{os.getpid() % 100000}")

    def ip(self, name: str) -> str:
        return {"a": "192.168.77.2", "b": "192.168.77.3"}[name]

    def up(self) -> LanTopology:
        _sh("ip", "netns", "add", self.ns("lan"))
        _sh(*self.exec_prefix("lan"), "ip", "link", "add", "br0", "type", "bridge")
        _sh(*self.exec_prefix("lan"), "ip", "link", "set", "br0", "up")
        for n in ("a", "b"):
            _sh("ip", "netns", "add", self.ns(n))
            _sh(*self.exec_prefix(n), "ip", "link", "set", "lo", "up")
            here, there = f"{self.tag}{n}0", f"{self.tag}{n}1"
            _sh("ip", "link", "add", here, "type", "veth", "peer", "name", there)
            _sh("ip", "link", "set", here, "netns", self.ns(n))
            _sh("ip", "link", "set", there, "netns", self.ns("lan"))
            _sh(*self.exec_prefix(n), "ip", "link", "set", here, "name", "eth0")
            _sh(*self.exec_prefix(n), "ip", "addr", "add", f"{self.ip(n)}/24", "dev", "eth0")
            _sh(*self.exec_prefix(n), "ip", "link", "set", "eth0", "up")
            _sh(*self.exec_prefix("lan"), "ip", "link", "set", there, "master", "br0")
            _sh(*self.exec_prefix("lan"), "ip", "link", "set", there, "up")
        return self

    def down(self) -> None:
        for n in ("a", "b", "lan"):
            subprocess.run(["ip", "netns", "del", self.ns(n)], capture_output=True)
