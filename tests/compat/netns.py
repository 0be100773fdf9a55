"""Pods as real Linux network namespaces, for tests where the node agent must tell pods apart by
their source IP exactly as it would on a node.

Each pod is a namespace joined to the host by a veth pair: the pod end has 10.200.N.2/24 (its
"podIP"), the host end 10.200.N.1 (what the pod reaches the agent at; also its default route).
Subnets are allocated under a lock among the ones no interface uses yet, and names carry this
process's id, so parallel test runs do not clash. Needs root and iproute2.

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

    def run(self, argv, env=None, timeout=120):
        """Runs argv inside the pod's namespace with only PATH, HOME and `env` in its environment
        (no proxy settings leak in). Returns the CompletedProcess, text mode."""
        clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"), **(env or {})}
        return subprocess.run(["ip", "netns", "exec", self.netns, *argv], env=clean, capture_output=True, text=True, timeout=timeout)


@dataclass
class PodFactory:
    prefix: str = field(default_factory=lambda: f"k{os.getpid():x}")
    pods: list = field(default_factory=list)

    def create(self, name):
        """A new pod namespace with its own IP; `name` only labels it."""
        n = len(self.pods)
        netns, host_if, pod_if = f"{self.prefix}-{n}-{name}", f"{self.prefix}h{n}", f"{self.prefix}p{n}"
        with open(LOCK, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            used = {int(m) for m in re.findall(r"inet 10\.200\.(\d+)\.", ip("-o", "-4", "addr"))}
            subnet = next((i for i in range(1, 255) if i not in used), None)
            if subnet is None:
                raise RuntimeError("every 10.200.N.0/24 subnet is in use; delete stale pod namespaces (ip netns list)")
            pod = Pod(name, netns, f"10.200.{subnet}.2", f"10.200.{subnet}.1", host_if)
            ip("netns", "add", netns)
            self.pods.append(pod)  # from here on, teardown removes it even if a step below fails
            ip("link", "add", host_if, "type", "veth", "peer", "name", pod_if, "netns", netns)
            ip("addr", "add", f"{pod.host_ip}/24", "dev", host_if)
        ip("link", "set", host_if, "up")
        ip("addr", "add", f"{pod.ip}/24", "dev", pod_if, netns=netns)
        ip("link", "set", pod_if, "up", netns=netns)
        ip("link", "set", "lo", "up", netns=netns)
        ip("route", "add", "default", "via", pod.host_ip, netns=netns)
        return pod

    def teardown(self):
        for pod in self.pods:
            subprocess.run(["ip", "netns", "del", pod.netns], capture_output=True)
            # Deleting the namespace removes the veth pair, but asynchronously; make sure.
            subprocess.run(["ip", "link", "del", pod.host_if], capture_output=True)
        self.pods.clear()


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
