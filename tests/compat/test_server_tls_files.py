"""`kite serve --tls-cert FILE --tls-key FILE`: replicas present one certificate from files (a
cert-manager Secret mounted in each pod), and serve the new one when the files are replaced, over
real TLS connections; a broken replacement leaves the last good certificate in force."""
import os
import shutil
import ssl
import subprocess
import time

import requests

from conftest import BIN
from issuer import certificates


def served(url):
    """The leaf certificate the server presents, as PEM."""
    host, port = url.removeprefix("https://").split(":")
    return ssl.get_server_certificate((host, int(port)))


def same(pem_a, pem_b):
    return ssl.PEM_cert_to_DER_cert(pem_a) == ssl.PEM_cert_to_DER_cert(pem_b)


def replace(src_cert, src_key, cert, key):
    """As a Secret volume or cert-manager's renewal does it: new files moved into place."""
    for src, dst in [(src_cert, cert), (src_key, key)]:
        tmp = dst.with_suffix(".new")
        shutil.copy(src, tmp)
        os.replace(tmp, dst)


def start(tmp_path, *args):
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen([BIN, "serve", "--listen", "127.0.0.1:0", *args], env={**os.environ, "KITE_HOME": str(tmp_path / "home")},
                            stdout=subprocess.PIPE, stderr=log, text=True)
    for line in proc.stdout:
        if line.startswith("kite: listening on "):
            return proc, line.split("kite: listening on ", 1)[1].strip()
    proc.wait()
    raise AssertionError("kite serve did not start: " + (tmp_path / "server.log").read_text())


def test_the_given_certificate_is_served_and_a_replacement_is_picked_up(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    ca1, cert1, key1 = certificates(first)
    ca2, cert2, key2 = certificates(second)
    mounted = tmp_path / "tls"
    mounted.mkdir()
    cert, key = mounted / "tls.crt", mounted / "tls.key"
    replace(cert1, key1, cert, key)
    proc, url = start(tmp_path, "--tls-cert", str(cert), "--tls-key", str(key))
    try:
        assert url.startswith("https://")
        assert same(served(url), cert1.read_text())
        assert requests.get(url + "/healthz", verify=str(ca1), timeout=10).text == "ok"
        # kite made no CA of its own: clients trust the certificate's issuer.
        assert not (tmp_path / "home" / "tls" / "ca.pem").exists()

        # Renewal: new files in place; new connections get the new certificate.
        replace(cert2, key2, cert, key)
        deadline = time.monotonic() + 10
        while not same(served(url), cert2.read_text()):
            assert time.monotonic() < deadline, "the replaced certificate was never served: " + (tmp_path / "server.log").read_text()
            time.sleep(0.1)
        assert requests.get(url + "/readyz", verify=str(ca2), timeout=10).text == "ok"

        # A broken replacement: logged, and the last good certificate stays.
        cert.write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
        deadline = time.monotonic() + 10
        while "do not load, the last good certificate stays in force" not in (tmp_path / "server.log").read_text():
            assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()
            time.sleep(0.1)
        assert same(served(url), cert2.read_text())
        assert requests.get(url + "/healthz", verify=str(ca2), timeout=10).status_code == 200
    finally:
        proc.terminate()
        proc.wait()


def test_a_bad_certificate_file_stops_the_start_naming_it(tmp_path):
    ca, cert, key = certificates(tmp_path)
    bad = tmp_path / "bad.crt"
    bad.write_text("garbage\n")
    home = {**os.environ, "KITE_HOME": str(tmp_path / "home")}
    for args, needle in [(["--tls-cert", str(bad), "--tls-key", str(key)], str(bad)),
                         (["--tls-cert", str(cert), "--tls-key", str(tmp_path / "missing.key")], "missing.key"),
                         (["--tls-cert", str(cert), "--tls-key", str(ca)], "key")]:
        out = subprocess.run([BIN, "serve", "--listen", "127.0.0.1:0", *args], env=home, capture_output=True, text=True, timeout=60)
        assert out.returncode != 0, args
        assert needle in out.stderr, out.stderr
    out = subprocess.run([BIN, "serve", "--tls-cert", str(cert)], env=home, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "--tls-key" in out.stderr, out.stderr
