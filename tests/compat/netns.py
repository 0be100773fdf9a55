"""Pods as real Linux network namespaces, for tests where the node agent must tell pods apart by
their source IP exactly as it would on a node.

Each pod is a namespace joined to the host by a veth pair: the pod end has 10.200.N.2/24 (its
"podIP"), the host end 10.200.N.1 (what the pod reaches the agent at; also its default route).
Subnets are allocated under a lock among the ones no interface in any namespace uses yet, and
names carry this process's id, so parallel test runs do not clash. Needs root and iproute2.

A node (`nodes.create`) is a namespace too, joined to the machine by one veth pair (10.200.S.2 on
the node, 10.200.S.1 on the machine) and with no other route: nothing sent from it, or through it
from its pods, to any other address (169.254.169.254 included) leaves it. Pods created with
`node=` hang off that namespace instead of the machine.

    from netns import pods  # the pytest fixture; or use PodFactory directly

    def test_x(pods):
        pod = pods.create("web")
        pod.run([sys.executable, "-c", "..."], env={"X": "y"})
"""
import fcntl
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field

import pytest

LOCK = "/tmp/kite-netns.lock"


def unavailable():
    """Why pods cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "network-namespace pods need root (ip netns add); run the tests as root to include them"
    if shutil.which("ip") is None:
        return "network-namespace pods need iproute2's `ip` command (apt-get install iproute2)"
    probe = f"kite-probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"this machine does not allow network namespaces: `ip netns add` said {made.stderr.strip()!r}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def ip(*args, netns=None):
    argv = ["ip", *(["-n", netns] if netns else []), *args]
    out = subprocess.run(argv, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv)}` failed: {out.stderr.strip()}")
    return out.stdout


@dataclass
class Pod:
    name: str
    netns: str
    ip: str
    host_ip: str
    host_if: str
    node: str = None  # the node namespace its host end lives in, if not the machine's
    pod_if: str = None  # its own end of the veth pair

    def run(self, argv, env=None, timeout=120):
        """Runs argv inside the pod's namespace with only PATH, HOME and `env` in its environment
        (no proxy settings leak in). Returns the CompletedProcess, text mode."""
        clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"), **(env or {})}
        return subprocess.run(["ip", "netns", "exec", self.netns, *argv], env=clean, capture_output=True, text=True, timeout=timeout)


def used_subnets():
    """The N of every 10.200.N.x address in the machine's namespace and every named one."""
    text = ip("-o", "-4", "addr")
    listed = subprocess.run(["ip", "-all", "netns", "exec", "ip", "-o", "-4", "addr"], capture_output=True, text=True)
    return {int(m) for m in re.findall(r"inet 10\.200\.(\d+)\.", text + listed.stdout)}


@dataclass
class Node:
    name: str
    netns: str
    ip: str
    gateway: str
    host_if: str

    def popen(self, argv, **kwargs):
        return subprocess.Popen(["ip", "netns", "exec", self.netns, *argv], **kwargs)

    def run(self, argv, timeout=60):
        return subprocess.run(["ip", "netns", "exec", self.netns, *argv], capture_output=True, text=True, timeout=timeout)


@dataclass
class PodFactory:
    prefix: str = field(default_factory=lambda: f"k{os.getpid():x}")
    pods: list = field(default_factory=list)

    nodes: list = field(default_factory=list)

    def _subnet(self):
        subnet = next((i for i in range(1, 255) if i not in used_subnets()), None)
        if subnet is None:
            raise RuntimeError("every 10.200.N.0/24 subnet is in use; delete stale pod namespaces (ip netns list)")
        return subnet

    def create_node(self, name):
        """A node namespace reachable from the machine at `.ip`, reaching it at `.gateway` only."""
        n = len(self.nodes)
        netns, host_if, node_if = f"{self.prefix}-n{n}-{name}", f"{self.prefix}m{n}", f"{self.prefix}n{n}"
        with open(LOCK, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            subnet = self._subnet()
            node = Node(name, netns, f"10.200.{subnet}.2", f"10.200.{subnet}.1", host_if)
            ip("netns", "add", netns)
            self.nodes.append(node)
            ip("link", "add", host_if, "type", "veth", "peer", "name", node_if, "netns", netns)
            ip("addr", "add", f"{node.gateway}/24", "dev", host_if)
            ip("addr", "add", f"{node.ip}/24", "dev", node_if, netns=netns)
        ip("link", "set", host_if, "up")
        ip("link", "set", node_if, "up", netns=netns)
        ip("link", "set", "lo", "up", netns=netns)
        return node

    def create(self, name, node=None):
        """A new pod namespace with its own IP; `name` only labels it. `node`: hang it off that
        node's namespace rather than the machine."""
        n = len(self.pods)
        netns, host_if, pod_if = f"{self.prefix}-{n}-{name}", f"{self.prefix}h{n}", f"{self.prefix}p{n}"
        on = node.netns if node else None
        with open(LOCK, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            subnet = self._subnet()
            pod = Pod(name, netns, f"10.200.{subnet}.2", f"10.200.{subnet}.1", host_if, on, pod_if)
            ip("netns", "add", netns)
            self.pods.append(pod)  # from here on, teardown removes it even if a step below fails
            ip("link", "add", host_if, "type", "veth", "peer", "name", pod_if, "netns", netns)
            if on:
                ip("link", "set", host_if, "netns", on)
            ip("addr", "add", f"{pod.host_ip}/24", "dev", host_if, netns=on)
        ip("link", "set", host_if, "up", netns=on)
        ip("addr", "add", f"{pod.ip}/24", "dev", pod_if, netns=netns)
        ip("link", "set", pod_if, "up", netns=netns)
        ip("link", "set", "lo", "up", netns=netns)
        ip("route", "add", "default", "via", pod.host_ip, netns=netns)
        return pod

    def teardown(self):
        for pod in self.pods:
            subprocess.run(["ip", "netns", "del", pod.netns], capture_output=True)
            # Deleting the namespace removes the veth pair, but asynchronously; make sure.
            subprocess.run(["ip", *(["-n", pod.node] if pod.node else []), "link", "del", pod.host_if], capture_output=True)
        for node in self.nodes:
            subprocess.run(["ip", "netns", "del", node.netns], capture_output=True)
            subprocess.run(["ip", "link", "del", node.host_if], capture_output=True)
        self.pods.clear()
        self.nodes.clear()


@pytest.fixture
def pods():
    why = unavailable()
    if why:
        pytest.skip(why)
    factory = PodFactory()
    try:
        yield factory
    finally:
        factory.teardown()
