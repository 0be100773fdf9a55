"""Fixtures that run the real kite binary for the real Python clients.

Each test gets its own server (own KITE_HOME, SQLite file, CA) on a free loopback port, and the
CLI signed in as the bootstrap admin. Clients trust kite's CA through REQUESTS_CA_BUNDLE /
SSL_CERT_FILE, exactly as a user would configure them.
"""
import json
import os
import pathlib
import subprocess
import threading

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("KITE_BIN", str(ROOT / "target" / "debug" / "kite"))


# libfaketime (Debian's `faketime`): the server's wall clock moved from outside, so expiry is tested
# with real lifetimes (600 s at least) without waiting for them. Monotonic time stays real.
LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


class Kite:
    def __init__(self, base: pathlib.Path, *args: str, listen: str = "127.0.0.1:0", movable_clock: bool = False):
        self.home = base / "srv"
        self.cli_home = base / "cli"
        self.log = open(base / "server.log", "w")
        env = {**os.environ, "KITE_HOME": str(self.home)}
        self.clock_file = None
        if movable_clock:
            self.clock_file = base / "faketime"
            self.clock_file.write_text("+0\n")
            env.update(LD_PRELOAD=LIBFAKETIME, FAKETIME_TIMESTAMP_FILE=str(self.clock_file), FAKETIME_NO_CACHE="1", FAKETIME_DONT_FAKE_MONOTONIC="1")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--listen", listen, *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        self.url = None
        self.agent_url = None  # with --agent-listen: the node agent's plain-HTTP address
        self.webhook_url = None  # with --webhook-listen: the webhooks' own HTTPS address
        for line in self.proc.stdout:
            if line.startswith("kite: webhooks listening on "):
                self.webhook_url = line.split()[4]
            if line.startswith("kite: node agent listening on "):
                self.agent_url = line.split("kite: node agent listening on ", 1)[1].strip()
            if line.startswith("kite: listening on "):
                self.url = line.split("kite: listening on ", 1)[1].strip()
                break
        if not self.url:
            raise RuntimeError("kite serve did not start: " + (base / "server.log").read_text())
        # Keep draining stdout so the server never blocks on a full pipe.
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()
        self.creds = json.loads((self.home / "admin-credentials.json").read_text())
        self.tenant = self.creds["tenant"]
        self.ca = str(self.home / "tls" / "ca.pem")
        self.cli("login", "--credentials-file", str(self.home / "admin-credentials.json"))

    def cli(self, *args: str, check: bool = True):
        out = subprocess.run(
            [BIN, *args], env={**os.environ, "KITE_HOME": str(self.cli_home)}, capture_output=True, text=True, stdin=subprocess.DEVNULL
        )
        if check and out.returncode != 0:
            raise AssertionError(f"kite {' '.join(args)} failed ({out.returncode}): {out.stderr}")
        if not check:
            return out
        return json.loads(out.stdout) if out.stdout.strip() else None

    def advance_clock(self, seconds: int):
        """Moves the server's wall clock `seconds` ahead of real time (needs movable_clock=True)."""
        self.clock_file.write_text(f"+{seconds}\n")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def start(tmp_path, monkeypatch, *args, **kwargs):
    server = Kite(tmp_path, *args, **kwargs)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", server.ca)
    monkeypatch.setenv("SSL_CERT_FILE", server.ca)
    return server


@pytest.fixture
def kite(tmp_path, monkeypatch):
    server = start(tmp_path, monkeypatch)
    yield server
    server.stop()


@pytest.fixture
def kite_factory(tmp_path, monkeypatch):
    servers = []

    def make(*args, listen="127.0.0.1:0", movable_clock=False):
        """`listen`: e.g. 0.0.0.0:0 when network-namespace pods must reach the HTTPS listener;
        `movable_clock`: the server runs under libfaketime, see Kite.advance_clock."""
        server = start(tmp_path, monkeypatch, *args, listen=listen, movable_clock=movable_clock)
        servers.append(server)
        return server

    yield make
    for s in servers:
        s.stop()
