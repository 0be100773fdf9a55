"""EKS Pod Identity end to end with real pods: each pod is a network namespace (tests/compat/netns.py)
with its own projected service-account token file, running unmodified boto3 inside it. boto3's
container credential provider fetches the pod's role from kite's agent listener at the EKS Pod
Identity agent's address, http://169.254.170.23/v1/credentials (botocore allows plain http only to
loopback and the ECS/EKS link-local addresses), then calls kite's STS over HTTPS.

As on an EKS node, 169.254.170.23 is a host address the pods reach through their default route
(the host end of their veth); it is put on each pod's host-side veth, so deleting the pod removes
it and nothing is left behind on the machine. Unlike the Azure agent, EKS Pod Identity tells pods
apart by their token, not their IP: the token's namespace and service account select the role."""
import json
import sys

import pytest

from issuer import Issuer
from netns import ip, pods  # noqa: F401  (the fixture)
from test_container_credentials import TRUST

AGENT_ADDRESS = "169.254.170.23"

GET_CALLER_IDENTITY = """
import json, boto3, botocore.exceptions
try:
    session = boto3.Session()
    me = session.client("sts").get_caller_identity()
    print(json.dumps({"method": session.get_credentials().method, "arn": me["Arn"]}))
except botocore.exceptions.CredentialRetrievalError as e:
    print(json.dumps({"error": type(e).__name__, "message": str(e)}))
"""


class Node:
    """kite serving a cluster's pods: STS on its HTTPS listener at each pod's gateway, the container
    credentials at 169.254.170.23 on its agent listener."""

    def __init__(self, tmp_path, kite_factory, pods):  # noqa: F811
        self.tmp_path, self.issuer = tmp_path, Issuer()
        self.pods = {name: pods.create(name) for name in ("cart", "billing", "stranger")}
        for pod in self.pods.values():
            ip("addr", "add", f"{AGENT_ADDRESS}/32", "dev", pod.host_if)
        # The pods reach the HTTPS listener at their gateway, so its certificate must name each one.
        names = [arg for pod in self.pods.values() for arg in ("--tls-name", pod.host_ip)]
        self.kite = kite_factory("--eks-cluster", "prod", "--cluster-issuer", self.issuer.url, "--allow-http-issuer", "--agent-listen", "0.0.0.0:0", *names,
                                 listen="0.0.0.0:0")
        self.port, self.agent_port = self.kite.url.rsplit(":", 1)[1], self.kite.agent_url.rsplit(":", 1)[1]
        (tmp_path / "trust.json").write_text(json.dumps(TRUST))

    def role(self, name):
        return self.kite.cli("iam", "role", "create", "--role-name", name, "--trust-policy", f"file://{self.tmp_path / 'trust.json'}")["Role"]

    def associate(self, namespace, service_account, role):
        return self.kite.cli("eks", "pod-identity-association", "create", "--cluster-name", "prod", "--namespace", namespace,
                             "--service-account", service_account, "--role-arn", role["Arn"])["association"]

    def project(self, pod, namespace, service_account):
        """What the kubelet mounts into the pod: its own token, bound to it, for pods.eks.amazonaws.com."""
        claims = {"kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": service_account, "uid": f"{service_account}-uid"},
                                    "pod": {"name": pod.name, "uid": f"{pod.netns}-uid"}}}
        path = self.tmp_path / f"{pod.netns}-token"
        path.write_text(self.issuer.token(f"system:serviceaccount:{namespace}:{service_account}", aud="pods.eks.amazonaws.com", **claims))
        return path

    def caller_identity(self, pod, token_file):
        """boto3 inside the pod, with only the environment the EKS Pod Identity webhook gives it."""
        env = {
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"http://{AGENT_ADDRESS}:{self.agent_port}/v1/credentials",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token_file),
            "AWS_ENDPOINT_URL_STS": f"https://{pod.host_ip}:{self.port}",
            "AWS_CA_BUNDLE": self.kite.ca,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(self.tmp_path / "no-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.tmp_path / "no-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        out = pod.run([sys.executable, "-c", GET_CALLER_IDENTITY], env=env)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)


@pytest.fixture
def node(tmp_path, kite_factory, pods):  # noqa: F811
    node = Node(tmp_path, kite_factory, pods)
    yield node
    node.issuer.close()


def assumed_role_prefix(role, pod):
    return role["Arn"].replace(":iam::", ":sts::").replace(":role/", ":assumed-role/") + f"/eks-prod-{pod.name}-"


def test_pods_in_their_own_network_namespaces_get_their_service_accounts_role_and_deletions_apply_live(node):
    cart, billing, stranger = node.pods["cart"], node.pods["billing"], node.pods["stranger"]
    role_a, role_b = node.role("cart-role"), node.role("billing-role")
    association = node.associate("shop", "cart", role_a)
    node.associate("shop", "billing", role_b)
    tokens = {cart.name: node.project(cart, "shop", "cart"), billing.name: node.project(billing, "shop", "billing"),
              stranger.name: node.project(stranger, "shop", "stranger")}

    # Each pod's boto3 gets its own service account's role, from the container credentials endpoint.
    for pod, role in ((cart, role_a), (billing, role_b)):
        me = node.caller_identity(pod, tokens[pod.name])
        assert me.get("method") == "container-role" and me["arn"].startswith(assumed_role_prefix(role, pod)), me

    # A service account without an association is refused, by name.
    refused = node.caller_identity(stranger, tokens[stranger.name])
    assert refused.get("error") == "CredentialRetrievalError", refused
    assert "no pod identity association for service account shop/stranger" in refused["message"] and "cluster prod" in refused["message"], refused

    # Deleting an association applies on the next call, with kite still running; the other pod is unaffected.
    node.kite.cli("eks", "pod-identity-association", "delete", "--cluster-name", "prod", "--association-id", association["associationId"])
    refused = node.caller_identity(cart, tokens[cart.name])
    assert "no pod identity association for service account shop/cart" in refused.get("message", ""), refused
    assert node.caller_identity(billing, tokens[billing.name])["arn"].startswith(assumed_role_prefix(role_b, billing))
