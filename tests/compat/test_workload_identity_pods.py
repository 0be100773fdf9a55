"""Workload identity end to end, with nothing set by hand in the pods: service accounts made by
`kite k8s serviceaccount create` into the directory source, pods sent through the admission webhook
as the API server sends them, the returned JSONPatch applied with python-jsonpatch, and the mutated
pods run as a kubelet would run them. Each pod is a network namespace (tests/compat/netns.py); its
projected volumes are materialised at their mount paths in the pod's own mount namespace (a
service-account token signed by the test cluster issuer, with the volume's audience and lifetime; the
CA ConfigMap's file), and its process gets exactly the container's environment. Inside, the unmodified
`DefaultAzureCredential` and boto3's default credential chain find their credentials.

EKS Pod Identity's agent address 169.254.170.23:80 is put on a host-side veth, and kite's agent
listener bound to it, as the EKS Pod Identity agent binds it on a node."""
import base64
import json
import shlex
import socket
import sys
import time
import uuid

import jsonpatch
import requests

from issuer import Issuer
from netns import ip, pods  # noqa: F401  (the fixture)
from test_container_credentials import TRUST

AGENT_ADDRESS = "169.254.170.23"
CA_CONFIG_MAP = "kite-root-ca.crt"

AZURE = """
import json
from azure.identity import DefaultAzureCredential
token = DefaultAzureCredential().get_token("https://management.azure.com/.default").token
print(json.dumps({"token": token}))
"""

AWS = """
import json, boto3
session = boto3.Session()
me = session.client("sts").get_caller_identity()
print(json.dumps({"method": session.get_credentials().method, "arn": me["Arn"]}))
"""


def free_port():
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def admit(kite, pod, namespace):
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
              "request": {"uid": str(uuid.uuid4()), "kind": {"group": "", "version": "v1", "kind": "Pod"},
                          "resource": {"group": "", "version": "v1", "resource": "pods"}, "namespace": namespace,
                          "operation": "CREATE", "object": pod, "dryRun": False}}
    answer = requests.post(f"{kite.url}/mutate-v1-pod", json=review, verify=kite.ca, timeout=10)
    assert answer.status_code == 200, answer.text
    response = answer.json()["response"]
    if "patch" not in response:
        return None, response
    return jsonpatch.apply_patch(pod, json.loads(base64.b64decode(response["patch"]))), response


def admitted(kite, pod, namespace, timeout=10):
    """The mutated pod, once the service account written into the directory has been read."""
    deadline = time.time() + timeout
    while True:
        mutated, response = admit(kite, pod, namespace)
        if mutated is not None:
            return mutated
        assert time.time() < deadline, f"the webhook never mutated the pod: {response}"
        time.sleep(0.2)


class Kubelet:
    """Runs a mutated pod's first container in a network-namespace pod, as the kubelet would."""

    def __init__(self, tmp_path, issuer, kite):
        self.tmp_path, self.issuer, self.kite = tmp_path, issuer, kite

    def volume_file(self, pod, volume, namespace, sandbox):
        """The files a volume holds: (name in the volume, host path of its content)."""
        if "projected" in volume:
            source = volume["projected"]["sources"][0]["serviceAccountToken"]
            sa = pod["spec"]["serviceAccountName"]
            claims = {"kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": sa, "uid": f"{sa}-uid"},
                                        "pod": {"name": sandbox.name, "uid": f"{sandbox.netns}-uid"}}}
            token = self.issuer.token(f"system:serviceaccount:{namespace}:{sa}", aud=source["audience"], lifetime=source["expirationSeconds"], **claims)
            path = self.tmp_path / f"{sandbox.netns}-{volume['name']}"
            path.write_text(token)
            return source["path"], path
        assert volume["configMap"]["name"] == CA_CONFIG_MAP, volume
        return volume["configMap"]["items"][0]["path"], self.kite.ca

    def run(self, sandbox, pod, namespace, program):
        container = pod["spec"]["containers"][0]
        volumes = {v["name"]: v for v in pod["spec"].get("volumes", [])}
        steps = ["mount -t tmpfs tmpfs /run"]  # /var/run is /run: the pod's own, in its mount namespace
        for mount in container.get("volumeMounts", []):
            name, content = self.volume_file(pod, volumes[mount["name"]], namespace, sandbox)
            steps += [f"mkdir -p {shlex.quote(mount['mountPath'])}", f"cp {shlex.quote(str(content))} {shlex.quote(mount['mountPath'] + '/' + name)}"]
        home = self.tmp_path / f"{sandbox.netns}-home"
        home.mkdir(exist_ok=True)
        env = {e["name"]: e["value"] for e in container.get("env", [])}
        env["HOME"] = str(home)  # the container's own filesystem: no credentials or config of the host's
        steps.append(" ".join(shlex.quote(a) for a in [sys.executable, "-c", program]))
        out = sandbox.run(["sh", "-c", " && ".join(steps)], env=env)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout.strip().splitlines()[-1])


def pod(service_account, labels=None):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": f"{service_account}-", "labels": labels or {}},
            "spec": {"serviceAccountName": service_account, "containers": [{"name": "app", "image": "app:1"}]}}


def test_mutated_pods_get_entra_tokens_sts_and_eks_pod_identity_credentials_with_nothing_set_by_hand(tmp_path, kite_factory, pods):  # noqa: F811
    issuer = Issuer(tmp_path)  # https, as IAM requires of OIDC providers
    sandboxes = {name: pods.create(name) for name in ("azure", "irsa", "eks")}
    gateway = sandboxes["azure"].host_ip  # every pod reaches the host's addresses through its own gateway
    ip("addr", "add", f"{AGENT_ADDRESS}/32", "dev", sandboxes["eks"].host_if)
    port = free_port()
    cluster = tmp_path / "cluster"
    cluster.mkdir()
    kite = kite_factory("--public-url", f"https://{gateway}:{port}", "--tls-name", gateway, "--pod-identity-dir", str(cluster),
                        "--eks-cluster", "prod", "--cluster-issuer", issuer.url, "--issuer-ca-file", str(issuer.ca_file), "--allow-http-issuer",
                        "--agent-listen", f"{AGENT_ADDRESS}:80", "--webhook-ca-configmap", CA_CONFIG_MAP, listen=f"0.0.0.0:{port}")
    kite.url = f"https://{gateway}:{port}"
    try:
        kite.cli("group", "create", "-n", "apps", "-l", "westus2")
        # Azure Workload Identity: the identity, its federated credential and the annotated service account.
        kite.cli("k8s", "serviceaccount", "create", "--name", "api", "--namespace", "payments", "--identity-name", "api-id", "-g", "apps",
                 "--issuer", issuer.url, "--dir", str(cluster))
        mi = kite.cli("identity", "show", "-g", "apps", "-n", "api-id")
        # IRSA: the issuer's OIDC provider, then a role trusting exactly this service account.
        kite.cli("iam", "oidc-provider", "create", "--url", issuer.url, "--client-id-list", "sts.amazonaws.com")
        kite.cli("k8s", "serviceaccount", "create", "--name", "s3", "--namespace", "payments", "--role-name", "s3-reader", "--issuer", issuer.url,
                 "--dir", str(cluster))
        # EKS Pod Identity: an association for a plain service account.
        (tmp_path / "trust.json").write_text(json.dumps(TRUST))
        role = kite.cli("iam", "role", "create", "--role-name", "cart-role", "--trust-policy", f"file://{tmp_path / 'trust.json'}")["Role"]
        kite.cli("eks", "pod-identity-association", "create", "--cluster-name", "prod", "--namespace", "payments", "--service-account", "cart",
                 "--role-arn", role["Arn"])
        (cluster / "cart.yaml").write_text("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: cart\n  namespace: payments\n")

        kubelet = Kubelet(tmp_path, issuer, kite)
        azure = admitted(kite, pod("api", labels={"azure.workload.identity/use": "true"}), "payments")
        token = kubelet.run(sandboxes["azure"], azure, "payments", AZURE)["token"]
        claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        assert claims["oid"] == mi["principalId"] and claims["appid"] == mi["clientId"], claims

        irsa = admitted(kite, pod("s3"), "payments")
        me = kubelet.run(sandboxes["irsa"], irsa, "payments", AWS)
        assert me["method"] == "assume-role-with-web-identity" and ":assumed-role/s3-reader/" in me["arn"], me

        eks = admitted(kite, pod("cart"), "payments")
        me = kubelet.run(sandboxes["eks"], eks, "payments", AWS)
        assert me["method"] == "container-role" and ":assumed-role/cart-role/eks-prod-" in me["arn"], me
    finally:
        issuer.close()
