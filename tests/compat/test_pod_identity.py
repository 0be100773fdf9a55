"""azure-identity's ManagedIdentityCredential, unmodified, against kite's node agent (the IMDS
endpoint NMI serves) with the aad-pod-identity YAML of seed 001 applied verbatim. The calling
"pod" is this process: its Pod object carries status.podIP 127.0.0.1."""
import time

import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ManagedIdentityCredential

IDENTITY = """apiVersion: aadpodidentity.k8s.io/v1
kind: AzureIdentity
metadata:
  name: {name}
  namespace: demo
spec:
  type: 0
  resourceID: {resource_id}
  clientID: {client_id}
---
apiVersion: aadpodidentity.k8s.io/v1
kind: AzureIdentityBinding
metadata:
  name: {name}-binding
  namespace: demo
spec:
  azureIdentity: {name}
  selector: {selector}
"""

POD = """apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: demo
  labels:
    aadpodidbinding: {label}
status:
  podIP: 127.0.0.1
  phase: Running
"""


def jwt_claims(token):
    import jwt
    return jwt.decode(token, options={"verify_signature": False})


def test_a_pod_gets_its_own_identitys_token_and_a_relabelled_pod_is_refused(tmp_path, kite_factory, monkeypatch):
    cluster = tmp_path / "cluster"
    cluster.mkdir()
    (cluster / "pod.yaml").write_text(POD.format(label="app"))
    kite = kite_factory("--pod-identity-dir", str(cluster), "--agent-listen", "127.0.0.1:0")
    kite.cli("group", "create", "-n", "pods", "-l", "japaneast")
    mine = kite.cli("identity", "create", "-g", "pods", "-n", "app-identity")
    other = kite.cli("identity", "create", "-g", "pods", "-n", "other-identity")
    (cluster / "identities.yaml").write_text(
        IDENTITY.format(name="app-identity", resource_id=mine["id"], client_id=mine["clientId"], selector="app")
        + "---\n" + IDENTITY.format(name="other-identity", resource_id=other["id"], client_id=other["clientId"], selector="other")
    )
    time.sleep(6)  # the agent re-reads the cluster state
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", kite.agent_url)
    token = ManagedIdentityCredential().get_token("https://management.azure.com/.default")
    claims = jwt_claims(token.token)
    assert claims["oid"] == mine["principalId"] and claims["aud"] == "https://management.azure.com"
    # Asking for the other identity is refused: the pod is not bound to it.
    with pytest.raises(ClientAuthenticationError) as raised:
        ManagedIdentityCredential(client_id=other["clientId"]).get_token("https://management.azure.com/.default")
    assert "not bound to the requested identity" in str(raised.value)
    # Naming the identity by its object (principal) ID selects it the same way.
    token = ManagedIdentityCredential(identity_config={"object_id": mine["principalId"]}).get_token("https://storage.azure.com/.default")
    assert jwt_claims(token.token)["oid"] == mine["principalId"]
    with pytest.raises(ClientAuthenticationError) as raised:
        ManagedIdentityCredential(identity_config={"object_id": other["principalId"]}).get_token("https://storage.azure.com/.default")
    assert "not bound to the requested identity" in str(raised.value)

    # IMDS's own answer to a call without the Metadata header.
    r = requests.get(f"{kite.agent_url}/metadata/identity/oauth2/token", params={"api-version": "2018-02-01", "resource": "https://vault.azure.net"})
    assert r.status_code == 400 and r.json()["error_description"] == "Required metadata header not specified"

    # Relabel the pod: without restarting anything, the agent now gives it the other identity.
    (cluster / "pod.yaml").write_text(POD.format(label="other"))
    time.sleep(6)
    token = ManagedIdentityCredential().get_token("https://vault.azure.net/.default")
    assert jwt_claims(token.token)["oid"] == other["principalId"]
    # And a pod no binding selects is told why.
    (cluster / "pod.yaml").write_text(POD.format(label="nobody"))
    time.sleep(6)
    with pytest.raises(ClientAuthenticationError) as raised:
        ManagedIdentityCredential().get_token("https://vault.azure.net/.default")
    assert "demo/web" in str(raised.value) and "aadpodidbinding=nobody" in str(raised.value)
