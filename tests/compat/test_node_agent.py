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
    # Only the agent endpoints are there: the management API and the token service stay on HTTPS.
    for path in ("/subscriptions", f"/{kite.tenant}/oauth2/v2.0/token", "/kite/signingKeys"):
        assert requests.get(kite.agent_url + path).status_code == 404, path
