"""`kite k8s manifests [server|agent|crds|webhooks|all]`: what a cluster needs to run kite, checked
offline against the Kubernetes OpenAPI schemas by kubernetes-validate, and read as kubelet and
kube-apiserver would read the parts that matter."""
import json
import os
import pathlib
import subprocess
import sys

import yaml

from conftest import BIN

VALIDATOR = pathlib.Path(sys.executable).parent / "kubernetes-validate"


def manifests(tmp_path, *args, check=True):
    out = subprocess.run([BIN, "k8s", "manifests", *args], env={**os.environ, "KITE_HOME": str(tmp_path / "cli")},
                         capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if check:
        assert out.returncode == 0, out.stderr
    return out


def objects(tmp_path, *args):
    return json.loads(manifests(tmp_path, *args, "-o", "json").stdout)["items"]


def one(items, kind, name=None):
    found = [o for o in items if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, (kind, name, [o["kind"] for o in items])
    return found[0]


def test_every_part_passes_the_kubernetes_schemas(tmp_path):
    flags = ["--namespace", "identity", "--image", "registry.example/kite:1.2.3", "--database-url-secret", "kite-pg"]
    for name, args in [("default", []), ("all", ["all", *flags]), ("server", ["server", *flags]), ("agent", ["agent", *flags]), ("crds", ["crds"])]:
        path = tmp_path / f"{name}.yaml"
        path.write_text(manifests(tmp_path, *args).stdout)
        checked = subprocess.run([str(VALIDATOR), "--strict", str(path)], capture_output=True, text=True)
        assert checked.returncode == 0, name + ": " + checked.stdout + checked.stderr
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        assert docs and all("kind" in d and "apiVersion" in d for d in docs), name
    everything = [d["kind"] for d in yaml.safe_load_all((tmp_path / "default.yaml").read_text())]
    assert everything[:4] == ["CustomResourceDefinition"] * 4, "CRDs first: the server watches them"
    for kind in ["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment", "Service",
                 "PodDisruptionBudget", "DaemonSet"]:
        assert kind in everything, kind


def test_the_server_runs_two_replicas_on_one_database_with_probes_and_one_certificate(tmp_path):
    items = objects(tmp_path, "server", "--namespace", "identity", "--image", "registry.example/kite:1.2.3", "--database-url-secret", "kite-pg")
    deployment = one(items, "Deployment", "kite-server")
    assert deployment["metadata"]["namespace"] == "identity" and deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "kite-server"
    (container,) = pod["containers"]
    assert container["image"] == "registry.example/kite:1.2.3"
    args = container["args"]
    assert args[0] == "serve" and "--in-cluster" in args

    def flag(name):
        return args[args.index(name) + 1]

    assert flag("--leader-election-namespace") == "identity"
    assert (flag("--cluster-issuer"), flag("--agent-audience"), flag("--agent-service-account")) == \
        ("https://kubernetes.default.svc.cluster.local", "kite", "identity:kite-agent")
    # That issuer is the API server itself: a private address, whose CA is the service account's.
    assert "--allow-private-issuer" in args and flag("--issuer-ca-file") == "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
    public = objects(tmp_path, "server", "--agent-issuer", "https://oidc.prod-aks.azure.com/tenant/issuer/")
    public_args = one(public, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--allow-private-issuer" not in public_args and "https://oidc.prod-aks.azure.com/tenant/issuer/" in public_args
    assert flag("--public-url") == "https://kite-server.identity.svc:8443"
    # One certificate for every replica, from the TLS Secret's files.
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert flag("--tls-cert") == mounts["tls"] + "/tls.crt" and flag("--tls-key") == mounts["tls"] + "/tls.key"
    assert volumes["tls"]["secret"]["secretName"] == "kite-server-tls"
    # The webhooks on a listener of their own, for kube-apiserver's client certificate.
    assert flag("--webhook-listen") == "0.0.0.0:9443"
    assert flag("--webhook-client-ca") == mounts["webhook-client-ca"] + "/ca.crt"
    env = {e["name"]: e for e in container["env"]}
    assert env["KITE_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "kite-pg", "key": "url"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "https", "scheme": "HTTPS"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "https", "scheme": "HTTPS"}
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"https": 8443, "webhooks": 9443}
    assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    service = one(items, "Service", "kite-server")
    assert {p["port"] for p in service["spec"]["ports"]} == {8443, 9443}
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    budget = one(items, "PodDisruptionBudget")
    assert budget["spec"]["minAvailable"] == 1 and budget["spec"]["selector"] == deployment["spec"]["selector"]
    (lease_role,) = [o for o in items if o["kind"] == "Role" and o["metadata"]["namespace"] == "identity"]
    assert {r["resources"][0] for r in lease_role["rules"]} == {"leases"}


def test_the_agent_runs_on_every_node_with_its_own_token_and_no_secrets(tmp_path):
    items = objects(tmp_path, "agent")
    ds = one(items, "DaemonSet", "kite-agent")
    pod = ds["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert pod["tolerations"] == [{"operator": "Exists"}]
    assert pod["serviceAccountName"] == "kite-agent"
    (container,) = pod["containers"]
    assert container["securityContext"]["capabilities"] == {"add": ["NET_ADMIN"]}
    assert "privileged" not in container["securityContext"]
    assert container["args"] == ["agent", "--server", "https://kite-server.kite-system.svc:8443", "--server-ca", "/etc/kite/ca/ca.crt",
                                 "--token-file", "/var/run/secrets/kite/token", "--node-name", "$(NODE_NAME)", "--listen", "0.0.0.0:2579",
                                 "--in-cluster", "--redirect", "--pod-interfaces", "veth+,azv+,cali+,eni+"]
    (node_name,) = [e for e in container["env"] if e["name"] == "NODE_NAME"]
    assert node_name["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    for probe, path in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")]:
        assert container[probe]["httpGet"] == {"path": path, "port": 2579, "scheme": "HTTP"}
    # The token the agent proves itself with: projected, for the audience kite, at the path it reads.
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    token_volumes = [name for name, v in volumes.items() if "projected" in v]
    (token,) = token_volumes
    (source,) = volumes[token]["projected"]["sources"]
    assert source["serviceAccountToken"]["audience"] == "kite"
    assert mounts[token] + "/" + source["serviceAccountToken"]["path"] == "/var/run/secrets/kite/token"
    assert all("secret" not in v for v in volumes.values()), "the agent mounts no Secret"
    role = one(items, "ClusterRole", "kite-agent")
    assert not any("secrets" in r["resources"] for r in role["rules"]), role
    assert all(set(r["verbs"]) <= {"get", "list", "watch"} for r in role["rules"]), role


def test_the_api_server_webhook_files_are_kubeconfigs_with_a_client_certificate(tmp_path):
    out = manifests(tmp_path, "webhooks", "--namespace", "identity").stdout
    assert "# kube-apiserver --authentication-token-webhook-config-file=" in out
    assert "# kube-apiserver --authorization-webhook-config-file=" in out
    configs = [d for d in yaml.safe_load_all(out) if d]
    assert [c["clusters"][0]["cluster"]["server"] for c in configs] == [
        "https://kite-server.identity.svc:9443/authenticate", "https://kite-server.identity.svc:9443/authorize"]
    for c in configs:
        assert c["kind"] == "Config" and c["current-context"] == c["contexts"][0]["name"]
        user = c["users"][0]["user"]
        assert user["client-certificate"].endswith(".crt") and user["client-key"].endswith(".key")
        assert c["clusters"][0]["cluster"]["certificate-authority"]
    custom = [d for d in yaml.safe_load_all(manifests(tmp_path, "webhooks", "--url", "https://10.0.0.5:30443/").stdout) if d]
    assert custom[1]["clusters"][0]["cluster"]["server"] == "https://10.0.0.5:30443/authorize"
    bad = manifests(tmp_path, "webhooks", "--url", "http://10.0.0.5", check=False)
    assert bad.returncode != 0 and "https://" in bad.stderr, bad.stderr
