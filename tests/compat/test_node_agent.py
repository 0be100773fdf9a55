"""kite's node agent on its own plain-HTTP listener (`--agent-listen`), as NMI serves it: the
unmodified azure-identity ManagedIdentityCredential pointed at it with
AZURE_POD_IDENTITY_AUTHORITY_HOST. The calling "pod" is this process (status.podIP 127.0.0.1)."""
import time

import jwt
import requests
from azure.identity import ManagedIdentityCredential

from test_pod_identity import IDENTITY, POD


def claims(token):
    return jwt.decode(token, options={"verify_signature": False})


def start_agent(tmp_path, kite_factory, *args):
    cluster = tmp_path / "cluster"
    cluster.mkdir()
    kite = kite_factory("--pod-identity-dir", str(cluster), "--agent-listen", "127.0.0.1:0", *args)
    assert kite.agent_url.startswith("http://127.0.0.1:"), kite.agent_url
    kite.cli("group", "create", "-n", "pods", "-l", "japaneast")
    return kite, cluster


def bind(kite, cluster, name, selector, label):
    mi = kite.cli("identity", "create", "-g", "pods", "-n", name)
    (cluster / "identities.yaml").write_text(IDENTITY.format(name=name, resource_id=mi["id"], client_id=mi["clientId"], selector=selector))
    (cluster / "pod.yaml").write_text(POD.format(label=label))
    time.sleep(6)  # the agent re-reads the cluster state
    return mi


def test_managed_identity_credential_works_unmodified_over_the_plain_http_agent_listener(tmp_path, kite_factory, monkeypatch):
    kite, cluster = start_agent(tmp_path, kite_factory)
    mi = bind(kite, cluster, "app-identity", "app", "app")
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", kite.agent_url)
    token = ManagedIdentityCredential().get_token("https://vault.azure.net/.default")
    got = claims(token.token)
    assert got["oid"] == mi["principalId"] and got["appid"] == mi["clientId"] and got["aud"] == "https://vault.azure.net"
    # The same by client_id and by resource ID (what the sync client sends as msi_res_id).
    assert claims(ManagedIdentityCredential(client_id=mi["clientId"]).get_token("https://vault.azure.net/.default").token)["oid"] == mi["principalId"]
    by_id = ManagedIdentityCredential(identity_config={"msi_res_id": mi["id"]}).get_token("https://storage.azure.com/.default")
    assert claims(by_id.token)["oid"] == mi["principalId"]

    # IMDS's case-insensitive /metadata prefix, over plain HTTP.
    r = requests.get(f"{kite.agent_url}/Metadata/identity/oauth2/token", params={"api-version": "2018-02-01", "resource": "https://vault.azure.net"}, headers={"Metadata": "true"})
    assert r.status_code == 200 and r.json()["client_id"] == mi["clientId"]
    # Only the agent endpoints are there: other paths are IMDS's (forwarded to the node's IMDS, and
    # refused without its Metadata header); the management API and token service stay on HTTPS.
    for path in ("/subscriptions", f"/{kite.tenant}/oauth2/v2.0/token", "/kite/signingKeys"):
        r = requests.get(kite.agent_url + path)
        assert r.status_code == 400 and r.json()["error_description"] == "Required metadata header not specified", path


EXCEPTED_POD = """apiVersion: v1
kind: Pod
metadata:
  name: mic-7d9f
  namespace: demo
  labels:
    app: mic
status:
  podIP: 127.0.0.1
  phase: Running
---
apiVersion: aadpodidentity.k8s.io/v1
kind: AzurePodIdentityException
metadata:
  name: mic-exception
  namespace: demo
spec:
  podLabels:
    app: mic
"""


class FakeImds:
    """A stand-in for the node's IMDS that records what reaches it and answers distinctively."""

    def __init__(self, host="127.0.0.1"):
        import http.server
        import threading

        seen = self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                # HTTP header names are case-insensitive (and kite's HTTP stack sends them lower-cased).
                seen.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}})
                if self.path.startswith("/metadata/identity/oauth2/token"):
                    body = b'{"access_token": "token-from-the-node-imds", "expires_in": "86399", "expires_on": "9999999999", "resource": "https://vault.azure.net", "token_type": "Bearer"}'
                    status = 200
                else:
                    body, status = b'{"compute": {"vmId": "vm-1"}}', 418
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("X-Imds-Said", "hello")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def test_excepted_pods_and_other_imds_paths_go_to_the_node_imds_untouched_and_its_absence_is_a_502(tmp_path, kite_factory, monkeypatch):
    imds = FakeImds()
    kite, cluster = start_agent(tmp_path, kite_factory, "--upstream-imds", imds.url)
    (cluster / "pod.yaml").write_text(EXCEPTED_POD)
    time.sleep(6)
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", kite.agent_url)
    client_id = "9b2d1c8e-0000-4000-8000-000000000001"
    token = ManagedIdentityCredential(client_id=client_id).get_token("https://vault.azure.net/.default")
    assert token.token == "token-from-the-node-imds"
    sent = imds.seen[-1]
    assert sent["path"].startswith("/metadata/identity/oauth2/token?") and f"client_id={client_id}" in sent["path"], sent
    assert sent["headers"]["metadata"] == "true" and "x-client-sku" in sent["headers"], sent

    # Path (as spelled), query and headers reach the node's IMDS unchanged; its status, headers and body come back.
    r = requests.get(f"{kite.agent_url}/Metadata/instance?api-version=2021-02-01&format=json", headers={"Metadata": "true", "X-Trace": "abc"})
    assert r.status_code == 418 and r.headers["X-Imds-Said"] == "hello" and r.json() == {"compute": {"vmId": "vm-1"}}
    assert imds.seen[-1]["path"] == "/Metadata/instance?api-version=2021-02-01&format=json" and imds.seen[-1]["headers"]["x-trace"] == "abc"
    # Without Metadata: true, IMDS's own refusal, and nothing is forwarded.
    before = len(imds.seen)
    r = requests.get(f"{kite.agent_url}/metadata/instance?api-version=2021-02-01")
    assert r.status_code == 400 and r.json()["error_description"] == "Required metadata header not specified" and len(imds.seen) == before
    # The management API is not on the agent listener: such a path is just another IMDS path.
    r = requests.get(f"{kite.agent_url}/subscriptions", headers={"Metadata": "true"})
    assert r.status_code == 418 and imds.seen[-1]["path"] == "/subscriptions"

    imds.stop()
    r = requests.get(f"{kite.agent_url}/metadata/identity/oauth2/token", params={"api-version": "2018-02-01", "resource": "https://vault.azure.net"}, headers={"Metadata": "true"})
    assert r.status_code == 502 and imds.url in r.json()["error_description"] and "--upstream-imds" in r.json()["error_description"], r.text


def test_an_upstream_imds_that_leads_back_to_the_agent_is_a_502_not_a_loop(tmp_path, kite_factory):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cluster = tmp_path / "cluster"
    cluster.mkdir()
    kite = kite_factory("--pod-identity-dir", str(cluster), "--agent-listen", f"127.0.0.1:{port}", "--upstream-imds", f"http://127.0.0.1:{port}")
    r = requests.get(f"{kite.agent_url}/metadata/instance?api-version=2021-02-01", headers={"Metadata": "true"}, timeout=30)
    assert r.status_code == 502 and "leads back to a kite agent" in r.json()["error_description"], r.text


def scrape(url, **kwargs):
    """Samples of a /metrics page as {(name, {label: value}): value}, read as Prometheus would."""
    import re

    r = requests.get(f"{url}/metrics", **kwargs)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/openmetrics-text"), r.headers
    samples = {}
    for line in r.text.splitlines():
        if line.startswith("#"):
            continue
        m = re.fullmatch(r'([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)', line)
        assert m, f"not an exposition line: {line!r}"
        labels = tuple(sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or "")))
        samples[(m.group(1), labels)] = float(m.group(3))
    return samples


def sample(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_requests_cache_hits_and_errors_on_both_listeners(tmp_path, kite_factory):
    kite, cluster = start_agent(tmp_path, kite_factory)
    bind(kite, cluster, "app-identity", "app", "app")
    token_url = f"{kite.agent_url}/metadata/identity/oauth2/token"
    ask = {"api-version": "2018-02-01", "resource": "https://vault.azure.net"}
    for _ in range(3):  # one miss, then two hits
        assert requests.get(token_url, params=ask, headers={"Metadata": "true"}).status_code == 200
    assert requests.get(token_url, params=ask).status_code == 400
    assert requests.get(token_url, params={**ask, "client_id": "00000000-0000-4000-8000-000000000009"}, headers={"Metadata": "true"}).status_code == 403

    endpoint = "/metadata/identity/oauth2/token"
    got = scrape(kite.agent_url)
    assert sample(got, "kite_http_requests_total", endpoint=endpoint, status="200") == 3
    assert sample(got, "kite_http_requests_total", endpoint=endpoint, status="400") == 1
    assert sample(got, "kite_http_requests_total", endpoint=endpoint, status="403") == 1
    assert sample(got, "kite_imds_token_cache_hits_total") == 2 and sample(got, "kite_imds_token_cache_misses_total") == 1
    assert sample(got, "kite_imds_errors_total", kind="missing_metadata_header") == 1
    assert sample(got, "kite_imds_errors_total", kind="not_bound") == 1
    # The latency histogram: every request observed, buckets cumulative up to +Inf.
    assert sample(got, "kite_http_request_duration_seconds_count", endpoint=endpoint) == 5
    assert sample(got, "kite_http_request_duration_seconds_bucket", endpoint=endpoint, le="+Inf") == 5
    assert 0 < sample(got, "kite_http_request_duration_seconds_sum", endpoint=endpoint) < 5

    # The HTTPS listener serves the same figures, and counts the management API by route template.
    main = scrape(kite.url, verify=kite.ca)
    assert sample(main, "kite_imds_token_cache_hits_total") == 2
    group_puts = [v for (name, labels), v in main.items() if name == "kite_http_requests_total" and ("endpoint", "/subscriptions/{sub}/resourceGroups/{rg}") in labels]
    assert sum(group_puts) >= 1, sorted(k for k in main if k[0] == "kite_http_requests_total")
    assert sample(main, "kite_http_requests_total", endpoint="/metrics", status="200") == 1
