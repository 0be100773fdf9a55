"""The workload identity webhook as the API server calls it: a real AdmissionReview for a pod, the
answer's base64 JSONPatch applied with python-jsonpatch (a library kite's authors did not write),
and the resulting pod checked for what the unmodified SDKs read."""
import base64
import json
import uuid

import jsonpatch
import requests

CLIENT_ID = "5e3a4c3f-8d2e-4a8e-9f5c-0b1d2c3e4f50"

SERVICE_ACCOUNTS = """
apiVersion: v1
kind: ServiceAccount
metadata:
  name: api
  namespace: payments
  annotations:
    azure.workload.identity/client-id: 5e3a4c3f-8d2e-4a8e-9f5c-0b1d2c3e4f50
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: s3-reader
  namespace: payments
  annotations:
    eks.amazonaws.com/role-arn: arn:aws:iam::111122223333:role/s3-reader
"""


def review(kite, pod, namespace="payments"):
    body = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": pod,
            "dryRun": False,
        },
    }
    answer = requests.post(f"{kite.url}/mutate-v1-pod", json=body, verify=kite.ca, timeout=10)
    return body, answer


def pod(service_account, labels=None, env=None):
    container = {"name": "app", "image": "app:1"}
    if env:
        container["env"] = env
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "api-", "namespace": "payments", "labels": labels or {}},
            "spec": {"serviceAccountName": service_account, "containers": [container]}}


def mutated(kite, original):
    sent, answer = review(kite, original)
    assert answer.status_code == 200, answer.text
    response = answer.json()["response"]
    assert response["uid"] == sent["request"]["uid"] and response["allowed"] is True, response
    assert answer.json()["apiVersion"] == "admission.k8s.io/v1" and answer.json()["kind"] == "AdmissionReview"
    if "patch" not in response:
        return original, response
    assert response["patchType"] == "JSONPatch"
    return jsonpatch.apply_patch(original, json.loads(base64.b64decode(response["patch"]))), response


def env_of(p):
    return {e["name"]: e.get("value") for e in p["spec"]["containers"][0].get("env", [])}


def test_pods_get_their_sdk_environment_and_tokens_and_keep_their_own(tmp_path, kite_factory):
    cluster = tmp_path / "cluster"
    cluster.mkdir()
    (cluster / "service-accounts.yaml").write_text(SERVICE_ACCOUNTS)
    kite = kite_factory("--pod-identity-dir", str(cluster))

    azure, _ = mutated(kite, pod("api", labels={"azure.workload.identity/use": "true"}, env=[{"name": "AZURE_AUTHORITY_HOST", "value": "mine"}]))
    env = env_of(azure)
    assert env["AZURE_CLIENT_ID"] == CLIENT_ID and env["AZURE_TENANT_ID"] == kite.tenant, env
    assert env["AZURE_FEDERATED_TOKEN_FILE"] == "/var/run/secrets/azure/tokens/azure-identity-token"
    assert env["AZURE_AUTHORITY_HOST"] == "mine", "a variable the pod sets is never overwritten"
    volume = azure["spec"]["volumes"][0]
    assert volume["projected"]["sources"][0]["serviceAccountToken"] == {"path": "azure-identity-token", "audience": "api://AzureADTokenExchange", "expirationSeconds": 3600}
    again, response = mutated(kite, azure)
    assert again == azure and "patch" not in response, "a second pass changes nothing"

    aws, _ = mutated(kite, pod("s3-reader"))
    env = env_of(aws)
    assert env["AWS_ROLE_ARN"] == "arn:aws:iam::111122223333:role/s3-reader" and env["AWS_ENDPOINT_URL_STS"] == kite.url, env
    assert aws["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]["audience"] == "sts.amazonaws.com"

    # Unknown service account: admitted unchanged, with a warning naming the pod.
    unknown, response = mutated(kite, pod("nobody", labels={"azure.workload.identity/use": "true"}))
    assert "patch" not in response and any("not known to kite" in w for w in response["warnings"]), response

    _, answer = review(kite, {"kind": "Deployment"})
    assert answer.status_code == 400 and "not a Pod" in answer.text, answer.text


def test_the_webhook_configuration_and_the_ca_config_map_pass_the_kubernetes_schemas(kite, tmp_path):
    """`kite k8s manifests` output, checked offline by kubernetes-validate (the API's own OpenAPI schemas)."""
    import subprocess
    import sys
    import pathlib

    validator = pathlib.Path(sys.executable).parent / "kubernetes-validate"
    for name, args in [("webhook", ["webhook", "--ca-file", kite.ca]), ("webhook-url", ["webhook", "--url", kite.url, "--azure-only", "--ca-file", kite.ca]),
                       ("ca", ["ca-bundle", "-n", "payments", "shop", "--ca-file", kite.ca])]:
        out = kite.cli("k8s", "manifests", *args, check=False)
        assert out.returncode == 0, out.stderr
        path = tmp_path / f"{name}.yaml"
        path.write_text(out.stdout)
        checked = subprocess.run([str(validator), "--strict", str(path)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr

    hook = json.loads(kite.cli("k8s", "manifests", "webhook", "--ca-file", kite.ca, "-o", "json", check=False).stdout)["items"][0]["webhooks"][0]
    assert base64.b64decode(hook["clientConfig"]["caBundle"]).decode() == open(kite.ca).read()
    assert hook["failurePolicy"] == "Ignore" and "objectSelector" not in hook, "every pod, for IRSA; never blocked by kite being down"
    assert hook["namespaceSelector"]["matchExpressions"][0]["values"] == ["kube-system", "kite-system"]
    url_hook = json.loads(kite.cli("k8s", "manifests", "webhook", "--url", kite.url, "--azure-only", "--ca-file", kite.ca, "-o", "json", check=False).stdout)
    url_hook = url_hook["items"][0]["webhooks"][0]
    assert url_hook["clientConfig"]["url"] == f"{kite.url}/mutate-v1-pod" and url_hook["failurePolicy"] == "Fail", url_hook
    assert url_hook["objectSelector"] == {"matchLabels": {"azure.workload.identity/use": "true"}}

    # What the API server would refuse is refused here, saying why.
    bad = kite.cli("k8s", "manifests", "webhook", "--url", "http://kite.example", "--ca-file", kite.ca, check=False)
    assert bad.returncode != 0 and "https://" in bad.stderr, bad.stderr
    bad = kite.cli("k8s", "manifests", "webhook", "--timeout-seconds", "31", "--ca-file", kite.ca, check=False)
    assert bad.returncode != 0 and "31" in bad.stderr, bad.stderr


def test_on_their_own_listener_the_webhooks_answer_only_callers_with_a_client_certificate_from_the_given_ca(tmp_path, kite_factory):
    """As kube-apiserver calls webhooks with the client certificate of its webhook kubeconfig."""
    from issuer import certificates

    (tmp_path / "apiserver").mkdir()
    (tmp_path / "stranger").mkdir()
    ca, cert, key = certificates(tmp_path / "apiserver")
    _, other_cert, other_key = certificates(tmp_path / "stranger")
    cluster = tmp_path / "cluster"
    cluster.mkdir()
    (cluster / "service-accounts.yaml").write_text(SERVICE_ACCOUNTS)
    kite = kite_factory("--pod-identity-dir", str(cluster), "--webhook-listen", "127.0.0.1:0", "--webhook-client-ca", str(ca))
    assert kite.webhook_url and kite.webhook_url != kite.url
    token_review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": "not-a-token"}}

    def post(base, path, body, cert=None):
        return requests.post(f"{base}{path}", json=body, verify=kite.ca, cert=cert, timeout=10)

    # The API server's certificate: every webhook answers.
    reviewed = post(kite.webhook_url, "/authenticate", token_review, cert=(str(cert), str(key)))
    assert reviewed.status_code == 200 and reviewed.json()["status"]["authenticated"] is False, reviewed.text
    sent, _ = review(kite, pod("api", labels={"azure.workload.identity/use": "true"}))
    mutated = post(kite.webhook_url, "/mutate-v1-pod", sent, cert=(str(cert), str(key)))
    assert mutated.status_code == 200 and mutated.json()["response"]["patchType"] == "JSONPatch", mutated.text
    # Nothing else is served there.
    assert post(kite.webhook_url, "/subscriptions", {}, cert=(str(cert), str(key))).status_code in (404, 405)

    # No certificate, or one from another CA: the handshake is refused before any request is read.
    for presented in (None, (str(other_cert), str(other_key))):
        for path, body in (("/authenticate", token_review), ("/mutate-v1-pod", sent)):
            try:
                answer = post(kite.webhook_url, path, body, cert=presented)
            except requests.exceptions.ConnectionError:
                continue
            raise AssertionError(f"{path} answered {answer.status_code} to {presented}: {answer.text}")

    # The main listener no longer answers them.
    for path, body in (("/authenticate", token_review), ("/authorize", {}), ("/mutate-v1-pod", sent)):
        answer = post(kite.url, path, body)
        assert answer.status_code in (401, 404), (path, answer.status_code, answer.text)
