"""The node agent end to end with real pods: each pod is a network namespace with its own IP
(tests/compat/netns.py), running the unmodified azure-identity ManagedIdentityCredential with
AZURE_POD_IDENTITY_AUTHORITY_HOST at kite's plain-HTTP agent listener. The agent knows pods only
from Kubernetes YAML naming their IPs, and must tell them apart by the source address alone."""
import json
import sys
import time

import jwt

from netns import pods  # noqa: F401  (the fixture)
from test_pod_identity import IDENTITY

POD = """apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: demo
{labels}status:
  podIP: {ip}
  phase: Running
"""

GET_TOKEN = """
import json, sys
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ManagedIdentityCredential
kwargs = json.loads(sys.argv[1])
try:
    print(json.dumps({"token": ManagedIdentityCredential(**kwargs).get_token("https://vault.azure.net/.default").token}))
except Exception as e:
    print(json.dumps({"error": type(e).__name__, "refused": isinstance(e, ClientAuthenticationError), "message": str(e)}))
"""


def write_pod(cluster, pod, label):
    labels = f"  labels:\n    aadpodidbinding: {label}\n" if label else ""
    (cluster / f"pod-{pod.name}.yaml").write_text(POD.format(name=pod.name, ip=pod.ip, labels=labels))


def get_token(pod, agent_port, **kwargs):
    """What the pod's own azure-identity gets from the agent: claims, or the error it raised."""
    out = pod.run([sys.executable, "-c", GET_TOKEN, json.dumps(kwargs)], env={"AZURE_POD_IDENTITY_AUTHORITY_HOST": f"http://{pod.host_ip}:{agent_port}"})
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    if "token" in answer:
        return jwt.decode(answer["token"], options={"verify_signature": False})
    return answer


def eventually(check, timeout=20):
    """The agent re-reads the cluster state every few seconds; wait for a change to show."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


def test_pods_in_their_own_network_namespaces_get_only_their_bound_identity_and_changes_apply_live(tmp_path, kite_factory, pods):  # noqa: F811
    cluster = tmp_path / "cluster"
    cluster.mkdir()
    kite = kite_factory("--pod-identity-dir", str(cluster), "--agent-listen", "0.0.0.0:0")
    port = kite.agent_url.rsplit(":", 1)[1]
    kite.cli("group", "create", "-n", "pods", "-l", "japaneast")
    a = kite.cli("identity", "create", "-g", "pods", "-n", "identity-a")
    b = kite.cli("identity", "create", "-g", "pods", "-n", "identity-b")
    (cluster / "binding-a.yaml").write_text(IDENTITY.format(name="identity-a", resource_id=a["id"], client_id=a["clientId"], selector="app-a"))
    (cluster / "binding-b.yaml").write_text(IDENTITY.format(name="identity-b", resource_id=b["id"], client_id=b["clientId"], selector="app-b"))
    web, worker, stranger, unlabelled = pods.create("web"), pods.create("worker"), pods.create("stranger"), pods.create("bare")
    write_pod(cluster, web, "app-a")
    write_pod(cluster, worker, "app-b")
    write_pod(cluster, stranger, "app-z")
    write_pod(cluster, unlabelled, None)

    def has(pod, mi, **kwargs):
        got = get_token(pod, port, **kwargs)
        return got.get("oid") == mi["principalId"] and got.get("appid") == mi["clientId"]

    # Each pod gets its own identity's token, found by its source IP alone.
    assert eventually(lambda: has(web, a)), get_token(web, port)
    assert has(worker, b), get_token(worker, port)
    # Naming the other pod's identity does not get it.
    refused = get_token(web, port, client_id=b["clientId"])
    assert refused["refused"] and "not bound to the requested identity" in refused["message"], refused
    # A pod with another label, or none, is refused with the reason.
    refused = get_token(stranger, port)
    assert refused["refused"] and "demo/stranger" in refused["message"] and "aadpodidbinding=app-z" in refused["message"], refused
    refused = get_token(unlabelled, port)
    assert "demo/bare" in refused["message"] and "no 'aadpodidbinding' label" in refused["message"], refused

    # Relabelling a pod takes effect without restarting kite: web now has identity b, not a.
    write_pod(cluster, web, "app-b")
    assert eventually(lambda: has(web, b)), get_token(web, port)
    assert "not bound to the requested identity" in get_token(web, port, client_id=a["clientId"])["message"]
    # Deleting a binding takes effect too, even though b's token is cached: both pods lose it.
    (cluster / "binding-b.yaml").unlink()
    assert eventually(lambda: "error" in get_token(worker, port)), get_token(worker, port)
    for pod in (web, worker):
        refused = get_token(pod, port)
        assert refused["refused"] and "aadpodidbinding=app-b" in refused["message"], refused
