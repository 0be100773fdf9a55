"""`kite agent` as on a real node: the node is a network namespace with no route off the machine
(tests/compat/netns.py), its pods are namespaces behind it, and the agent runs inside it with no
database and no keys, getting tokens from `kite serve` over HTTPS with its own projected
service-account token. Its iptables redirect sends the pods' calls to 169.254.169.254 to it, so
the unmodified SDK defaults work with no environment variable at all."""
import json
import re
import signal
import subprocess
import sys
import uuid

import jwt
import pytest
import requests

from conftest import BIN
from issuer import Issuer
from netns import pods  # noqa: F401  (the fixture)
from test_netns_pods import eventually
from test_container_credentials import TRUST
from test_node_agent import FakeImds
from test_pod_identity import IDENTITY

AGENT_NAMESPACE, AGENT_ACCOUNT = "kite-system", "kite-agent"

POD = """apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {namespace}
  uid: {uid}
  labels: {labels}
spec:
  nodeName: {node}
status:
  podIP: {ip}
  phase: Running
"""

EXCEPTION = """apiVersion: aadpodidentity.k8s.io/v1
kind: AzurePodIdentityException
metadata:
  name: mic-exception
  namespace: demo
spec:
  podLabels:
    app: mic
"""

GET_TOKEN = """
import json, sys
from azure.identity import ManagedIdentityCredential
try:
    print(json.dumps({"token": ManagedIdentityCredential().get_token(sys.argv[1]).token}))
except Exception as e:
    print(json.dumps({"error": type(e).__name__, "message": str(e)}))
"""


def claims(token):
    return jwt.decode(token, options={"verify_signature": False})


class Cluster:
    """kite serve, the cluster issuer, and the directory of Kubernetes YAML that the server and
    every agent read as their cluster."""

    def __init__(self, tmp_path, kite_factory, pods):  # noqa: F811
        self.tmp_path, self.pods = tmp_path, pods
        self.dir = tmp_path / "cluster"
        self.dir.mkdir()
        self.issuer = Issuer()
        self.nodes = {name: pods.create_node(name) for name in ("node-a", "node-b")}
        names = [arg for node in self.nodes.values() for arg in ("--tls-name", node.gateway)]
        self.kite = kite_factory("--pod-identity-dir", str(self.dir), "--cluster-issuer", self.issuer.url, "--allow-http-issuer", "--eks-cluster", "prod",
                                 "--agent-service-account", f"{AGENT_NAMESPACE}:{AGENT_ACCOUNT}", *names, listen="0.0.0.0:0")
        self.port = self.kite.url.rsplit(":", 1)[1]
        self.kite.cli("group", "create", "-n", "pods", "-l", "japaneast")
        self.agents = []

    def identity(self, name, selector):
        mi = self.kite.cli("identity", "create", "-g", "pods", "-n", name)
        (self.dir / f"identity-{name}.yaml").write_text(IDENTITY.format(name=name, resource_id=mi["id"], client_id=mi["clientId"], selector=selector))
        return mi

    def pod(self, name, node, labels=None, namespace="demo", ip=None, uid=None):
        """A pod namespace on `node` (or, with `ip`, a host-network pod) and its YAML."""
        pod = None if ip else self.pods.create(name, node=node)
        uid = uid or str(uuid.uuid4())
        (self.dir / f"pod-{namespace}-{name}.yaml").write_text(
            POD.format(name=name, namespace=namespace, uid=uid, labels=json.dumps(labels or {}), node=node.name, ip=ip or pod.ip))
        return pod, uid

    def agent_token(self, pod_name, pod_uid, account=AGENT_ACCOUNT, aud="kite"):
        k8s = {"namespace": AGENT_NAMESPACE, "serviceaccount": {"name": account, "uid": "sa-uid"}, "pod": {"name": pod_name, "uid": pod_uid}}
        return self.issuer.token(f"system:serviceaccount:{AGENT_NAMESPACE}:{account}", aud=aud, **{"kubernetes.io": k8s})

    def start_agent(self, node, *extra):
        name = f"kite-agent-{node.name}"
        _, uid = self.pod(name, node, namespace=AGENT_NAMESPACE, ip=node.ip)
        token_file = self.tmp_path / f"{name}.token"
        token_file.write_text(self.agent_token(name, uid))
        agent = Agent(self, node, token_file, *extra)
        self.agents.append(agent)
        return agent

    def close(self):
        for agent in self.agents:
            agent.stop()
        self.issuer.close()


class Agent:
    def __init__(self, cluster, node, token_file, *extra):
        self.node = node
        self.log_path = cluster.tmp_path / f"agent-{node.name}.log"
        self.log = open(self.log_path, "w")
        argv = [BIN, "agent", "--server", f"https://{node.gateway}:{cluster.port}", "--server-ca", cluster.kite.ca, "--token-file", str(token_file),
                "--node-name", node.name, "--listen", "0.0.0.0:0", "--pod-identity-dir", str(cluster.dir),
                "--redirect", "--pod-interfaces", f"{cluster.pods.prefix}h+", "--redirect-check-interval", "1", *extra]
        self.proc = node.popen(argv, stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.url = None
        for line in self.proc.stdout:
            if line.startswith("kite: node agent listening on "):
                self.url = f"http://{node.ip}:{line.rsplit(':', 1)[1].strip()}"
                break
        if not self.url:
            raise RuntimeError("kite agent did not start: " + self.log_path.read_text())

    def metric(self, name, labels=""):
        """A sample from the agent's /metrics; `labels` as written there, e.g. 'kind="x"'."""
        text = requests.get(self.url + "/metrics", timeout=5).text
        series = f"{name}{{{labels}}}" if labels else name
        found = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
        return float(found.group(1)) if found else 0.0

    def log_text(self):
        return self.log_path.read_text()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


@pytest.fixture
def cluster(tmp_path, kite_factory, pods):  # noqa: F811
    world = Cluster(tmp_path, kite_factory, pods)
    yield world
    world.close()


def sdk_token(pod, resource="https://vault.azure.net/.default"):
    """ManagedIdentityCredential() inside the pod with no environment variable: IMDS's own address."""
    out = pod.run([sys.executable, "-c", GET_TOKEN, resource])
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def curl_imds(pod, *args, path="/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net"):
    return pod.run(["curl", "-sS", "--max-time", "3", "-H", "Metadata: true", *args, f"http://169.254.169.254{path}"])


def test_unmodified_sdk_defaults_get_the_pods_own_identity_through_the_redirect_and_the_rules_go_with_the_agent(cluster):
    a = cluster.identity("identity-a", "app-a")
    web, _ = cluster.pod("web", cluster.nodes["node-a"], {"aadpodidbinding": "app-a"})
    mic, _ = cluster.pod("mic", cluster.nodes["node-a"], {"app": "mic"})
    (cluster.dir / "exception.yaml").write_text(EXCEPTION)
    imds = FakeImds(host=cluster.nodes["node-a"].gateway)
    try:
        agent = cluster.start_agent(cluster.nodes["node-a"], "--upstream-imds", imds.url)
        assert requests.get(agent.url + "/readyz", timeout=5).status_code == 200

        got = eventually(lambda: sdk_token(web).get("token"))
        assert got, sdk_token(web)
        assert claims(got)["oid"] == a["principalId"] and claims(got)["aud"] == "https://vault.azure.net"
        # The server minted it: its audit trail names the pod, the node and how the agent authenticated.
        trail = cluster.kite.cli("audit", "list", "--operation", "Kite.NodeAgent/imds/token/action")
        mine = [e for e in trail if e.get("caller") == "demo/web"]
        assert mine and mine[0]["properties"]["node"] == "node-a" and mine[0]["claims"]["authnmethodsreferences"] == "NodeAgent", trail

        # The excepted pod reaches the node's IMDS (the stand-in) untouched.
        out = curl_imds(mic)
        assert "token-from-the-node-imds" in out.stdout, out
        assert any(s["path"].startswith("/metadata/identity/oauth2/token") for s in imds.seen)

        # Host-network traffic is not redirected: from the node itself, IMDS's address leads nowhere.
        host = cluster.nodes["node-a"].run(["curl", "-sS", "--max-time", "2", "-H", "Metadata: true", "http://169.254.169.254/metadata/identity/oauth2/token?resource=x"])
        assert host.returncode != 0 and "access_token" not in host.stdout, host

        rules = cluster.nodes["node-a"].run(["iptables-save"]).stdout
        assert "KITE-AGENT-IMDS" in rules and "KITE-AGENT-GUARD" in rules, rules
        agent.stop()
        rules = cluster.nodes["node-a"].run(["iptables-save"]).stdout
        assert "KITE-AGENT" not in rules, rules
        # With the agent gone, nothing answers the pod at IMDS's address any more.
        assert curl_imds(web).returncode != 0
    finally:
        imds.stop()


def test_a_pod_using_its_neighbours_ip_gets_nothing_and_the_agent_says_why(cluster):
    cluster.identity("identity-a", "app-a")
    b = cluster.identity("identity-b", "app-b")
    node = cluster.nodes["node-a"]
    attacker, _ = cluster.pod("attacker", node, {"aadpodidbinding": "app-a"})
    victim, _ = cluster.pod("victim", node, {"aadpodidbinding": "app-b"})
    agent = cluster.start_agent(node)
    assert eventually(lambda: sdk_token(victim).get("token"))

    # The attacker takes the victim's address and calls IMDS from it.
    attacker.run(["ip", "addr", "add", f"{victim.ip}/32", "dev", attacker.pod_if])
    stolen = curl_imds(attacker, "--interface", victim.ip)
    assert "access_token" not in stolen.stdout, stolen
    assert eventually(lambda: agent.metric("kite_agent_spoofed_packets_total") >= 1), agent.log_text()
    assert "another pod's IP" in agent.log_text()
    # The victim's own calls are unaffected.
    assert claims(sdk_token(victim)["token"])["oid"] == b["principalId"]


def test_the_server_answers_an_agent_only_for_pods_on_its_own_node(cluster):
    cluster.identity("identity-a", "app-a")
    node_a, node_b = cluster.nodes["node-a"], cluster.nodes["node-b"]
    elsewhere, _ = cluster.pod("elsewhere", node_b, {"aadpodidbinding": "app-a"})
    agent_a_uid = cluster.pod("kite-agent-a", node_a, namespace=AGENT_NAMESPACE, ip=node_a.ip)[1]
    agent_b_uid = cluster.pod("kite-agent-b", node_b, namespace=AGENT_NAMESPACE, ip=node_b.ip)[1]
    url = f"{cluster.kite.url}/agent/v1/token"
    ask = {"podIP": elsewhere.ip, "resource": "https://vault.azure.net"}

    def call(token):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.post(url, json=ask, headers=headers, verify=cluster.kite.ca, timeout=10)

    def ready():
        r = call(cluster.agent_token("kite-agent-b", agent_b_uid))
        return r if r.status_code == 200 else None
    assert eventually(ready), call(cluster.agent_token("kite-agent-b", agent_b_uid)).text

    refused = call(cluster.agent_token("kite-agent-a", agent_a_uid))
    assert refused.status_code == 403 and refused.json()["kind"] == "other_node", refused.text
    assert "runs on node node-b, not on node node-a" in refused.json()["error_description"]
    # Credentials that are not a node agent's get nothing, and the answer says what was wrong.
    for token, status, says in [
        (None, 401, "no service-account token"),
        (cluster.agent_token("kite-agent-b", agent_b_uid, aud="other"), 401, "audience"),
        (cluster.agent_token("kite-agent-b", agent_b_uid, account="default"), 403, "is not the node agents' service account"),
        (cluster.agent_token("kite-agent-b", "some-other-uid"), 403, "does not see scheduled on any node"),
        (Issuer().token(f"system:serviceaccount:{AGENT_NAMESPACE}:{AGENT_ACCOUNT}", aud="kite"), 401, "issuer"),
    ]:
        r = call(token)
        assert r.status_code == status and says in r.json()["error_description"] and r.json()["kind"] == "agent_unauthorized", (says, r.text)


def test_an_agent_keeps_serving_cached_tokens_while_no_server_answers(cluster):
    a = cluster.identity("identity-a", "app-a")
    web, _ = cluster.pod("web", cluster.nodes["node-a"], {"aadpodidbinding": "app-a"})
    agent = cluster.start_agent(cluster.nodes["node-a"])
    first = eventually(lambda: sdk_token(web).get("token"))
    assert first and claims(first)["oid"] == a["principalId"]

    cluster.kite.stop()
    assert sdk_token(web).get("token") == first
    # A token the agent never had cannot come from anywhere: refused, naming the unreachable server.
    out = curl_imds(web, path="/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://storage.azure.com")
    answer = json.loads(out.stdout)
    assert "could not reach the kite server" in answer["error_description"], answer
    assert agent.metric("kite_imds_errors_total", 'kind="server_unavailable"') == 1
    assert agent.metric("kite_imds_token_cache_hits_total") >= 1


FROZEN_CREDENTIALS = """
import json, boto3
c = boto3.Session().get_credentials()
f = c.get_frozen_credentials()
print(json.dumps({"method": c.method, "key": f.access_key, "secret": f.secret_key, "token": f.token}))
"""


def test_eks_pod_identity_goes_through_the_agent_to_the_server_and_only_for_pods_on_its_node(cluster, tmp_path):
    (tmp_path / "trust.json").write_text(json.dumps(TRUST))
    role = cluster.kite.cli("iam", "role", "create", "--role-name", "cart-role", "--trust-policy", f"file://{tmp_path / 'trust.json'}")["Role"]
    cluster.kite.cli("eks", "pod-identity-association", "create", "--cluster-name", "prod", "--namespace", "demo", "--service-account", "cart",
                     "--role-arn", role["Arn"])
    node_a, node_b = cluster.nodes["node-a"], cluster.nodes["node-b"]
    cart, cart_uid = cluster.pod("cart", node_a)
    _, billing_uid = cluster.pod("billing", node_b)

    def pod_token(name, uid, path):
        k8s = {"namespace": "demo", "serviceaccount": {"name": "cart", "uid": "sa"}, "pod": {"name": name, "uid": uid}}
        path.write_text(cluster.issuer.token("system:serviceaccount:demo:cart", aud="pods.eks.amazonaws.com", **{"kubernetes.io": k8s}))
        return path

    agent = cluster.start_agent(node_a)
    # The EKS Pod Identity agent's address, on the pod's side of the node.
    node_a.run(["ip", "addr", "add", "169.254.170.23/32", "dev", cart.host_if])
    port = agent.url.rsplit(":", 1)[1]
    env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": f"http://169.254.170.23:{port}/v1/credentials",
           "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(pod_token("cart", cart_uid, tmp_path / "cart.token")),
           "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_EC2_METADATA_DISABLED": "true"}

    def fetched():
        out = cart.run([sys.executable, "-c", FROZEN_CREDENTIALS], env=env)
        return json.loads(out.stdout) if out.returncode == 0 else None
    got = eventually(fetched)
    assert got and got["method"] == "container-role", got
    # The credentials are the server's: STS (outside the node) knows whose they are.
    import boto3
    sts = boto3.client("sts", endpoint_url=cluster.kite.url, verify=cluster.kite.ca, region_name="us-east-1",
                       aws_access_key_id=got["key"], aws_secret_access_key=got["secret"], aws_session_token=got["token"])
    assert ":assumed-role/cart-role/eks-prod-cart-" in sts.get_caller_identity()["Arn"]

    # node-a's agent relaying a token of a pod on node-b is refused by the server.
    agent_a = cluster.agent_token(f"kite-agent-{node_a.name}", re.search(r"uid: (\S+)", (cluster.dir / "pod-kite-system-kite-agent-node-a.yaml").read_text()).group(1))
    r = requests.post(f"{cluster.kite.url}/agent/v1/credentials", json={"token": pod_token("billing", billing_uid, tmp_path / "billing.token").read_text()},
                      headers={"Authorization": f"Bearer {agent_a}"}, verify=cluster.kite.ca, timeout=10)
    assert r.status_code == 400 and "AccessDeniedException" in r.text and "runs on node node-b, not on node node-a" in r.text, r.text


def test_the_agent_is_unready_until_it_has_its_own_token(cluster, tmp_path):
    node = cluster.nodes["node-a"]
    agent = cluster.start_agent(node)
    assert requests.get(agent.url + "/healthz", timeout=5).status_code == 200
    assert requests.get(agent.url + "/readyz", timeout=5).status_code == 200
    (tmp_path / f"kite-agent-{node.name}.token").unlink()
    r = requests.get(agent.url + "/readyz", timeout=5)
    assert r.status_code == 503 and "token file" in r.text, r.text
