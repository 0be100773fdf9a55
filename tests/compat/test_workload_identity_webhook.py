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
