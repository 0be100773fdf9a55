"""The unmodified Azure Key Vault SDK (azure-keyvault-secrets SecretClient) against kite's vault
data plane: the bearer challenge (with the SDK's challenge-resource check left on), secrets set,
read (latest and by version), versioned, listed with paging, updated, deleted, recovered and
purged; and refusals that say why.

Vaults live at https://NAME.vault.localhost:PORT/; each test maps *.vault.localhost to 127.0.0.1
by patching socket.getaddrinfo in this process only (monkeypatch undoes it).
"""
import pathlib
import socket
import time

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import ClientSecretCredential, DefaultAzureCredential
from azure.keyvault.secrets import SecretClient


@pytest.fixture(autouse=True)
def vault_dns(monkeypatch):
    real = socket.getaddrinfo

    def resolve(host, *args, **kwargs):
        if isinstance(host, str) and host.lower().endswith(".vault.localhost"):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)


def make_vault(kite, name="azure-vote", *extra):
    kite.cli("group", "create", "-n", "pod-identity", "-l", "japaneast")
    vault = kite.cli("keyvault", "create", "-g", "pod-identity", "-n", name, *extra)
    return vault


def app_with_reader(kite, name, vault):
    """A service principal holding Reader on the vault, as seed 001's identity does."""
    return kite.cli("ad", "sp", "create-for-rbac", "--name", name, "--role", "Reader", "--scopes", vault["id"])


def client_for(kite, vault, app):
    cred = ClientSecretCredential(kite.tenant, app["appId"], app["password"], authority=kite.url, disable_instance_discovery=True)
    return SecretClient(vault["properties"]["vaultUri"], cred)


def test_show_names_the_vault_uri_and_tenant_the_seed_reads(kite):
    vault = make_vault(kite)
    shown = kite.cli("keyvault", "show", "--name", "azure-vote")
    port = kite.url.rsplit(":", 1)[1]
    assert shown["properties"]["vaultUri"] == f"https://azure-vote.vault.localhost:{port}/"
    assert shown["properties"]["tenantId"] == kite.tenant
    assert shown["resourceGroup"] == "pod-identity" and shown["id"] == vault["id"]


def test_secret_client_sets_reads_versions_lists_updates_deletes_recovers_and_purges(kite):
    vault = make_vault(kite)
    app = app_with_reader(kite, "azure-vote", vault)
    kite.cli("keyvault", "set-policy", "-n", "azure-vote", "--spn", app["appId"],
             "--secret-permissions", "get", "list", "set", "delete", "recover", "purge")
    client = client_for(kite, vault, app)

    first = client.set_secret("redis-password", "first-password")
    second = client.set_secret("redis-password", "second-password", content_type="text/plain", tags={"app": "azure-vote"})
    assert first.properties.version != second.properties.version
    assert client.get_secret("redis-password").value == "second-password"
    assert client.get_secret("redis-password", first.properties.version).value == "first-password"
    latest = client.get_secret("redis-password")
    assert latest.properties.content_type == "text/plain" and latest.properties.tags == {"app": "azure-vote"}
    versions = {p.version for p in client.list_properties_of_secret_versions("redis-password")}
    assert versions == {first.properties.version, second.properties.version}

    for name in ["alpha", "bravo", "charlie"]:
        client.set_secret(name, name)
    pages = list(client.list_properties_of_secrets(max_page_size=2).by_page())
    assert len(pages) >= 2, "four secrets in pages of two follow nextLink"
    names = [p.name for page in pages for p in page]
    assert names == ["alpha", "bravo", "charlie", "redis-password"]

    client.update_secret_properties("alpha", enabled=False)
    with pytest.raises(HttpResponseError) as disabled:
        client.get_secret("alpha")
    assert disabled.value.status_code == 403 and "disabled" in str(disabled.value)

    deleted = client.begin_delete_secret("redis-password").result()
    assert deleted.name == "redis-password" and deleted.recovery_id.endswith("/deletedsecrets/redis-password")
    with pytest.raises(ResourceNotFoundError):
        client.get_secret("redis-password")
    assert client.get_deleted_secret("redis-password").name == "redis-password"
    assert [d.name for d in client.list_deleted_secrets()] == ["redis-password"]
    client.begin_recover_deleted_secret("redis-password").result()
    assert client.get_secret("redis-password").value == "second-password"
    assert client.get_secret("redis-password", first.properties.version).value == "first-password", "recovery keeps every version"

    client.begin_delete_secret("redis-password").result()
    client.purge_deleted_secret("redis-password")
    with pytest.raises(ResourceNotFoundError):
        client.get_deleted_secret("redis-password")
    assert client.set_secret("redis-password", "fresh").value == "fresh", "a purged name can be used again"


def test_reader_without_an_access_policy_is_refused_with_the_reason(kite):
    vault = make_vault(kite)
    app = app_with_reader(kite, "reader-only", vault)
    client = client_for(kite, vault, app)
    with pytest.raises(HttpResponseError) as refused:
        client.get_secret("redis-password")
    err = refused.value
    assert err.status_code == 403 and err.error.code == "Forbidden"
    message = str(err)
    assert app["appId"] in message and "azure-vote" in message and "secrets get permission" in message
    assert "no access policy" in message and "set-policy" in message

    # A policy with `get` only still refuses `set`, naming what it grants.
    kite.cli("keyvault", "set-policy", "-n", "azure-vote", "--spn", app["appId"], "--secret-permissions", "get")
    with pytest.raises(HttpResponseError) as no_set:
        client.set_secret("redis-password", "x")
    assert no_set.value.status_code == 403 and "[get] but not 'set'" in str(no_set.value)
    kite.cli("keyvault", "delete-policy", "-n", "azure-vote", "--spn", app["appId"])
    policies = kite.cli("keyvault", "show", "-n", "azure-vote")["properties"]["accessPolicies"]
    assert [p["objectId"] for p in policies] == [kite.cli("ad", "sp", "show", "--id", kite.creds["appId"])["id"]], "only the creator's policy is left"


def test_rbac_vault_with_default_azure_credential_from_the_environment(kite, monkeypatch):
    vault = make_vault(kite, "rbac-vault", "--enable-rbac-authorization")
    app = app_with_reader(kite, "rbac-app", vault)
    monkeypatch.setenv("AZURE_CLIENT_ID", app["appId"])
    monkeypatch.setenv("AZURE_CLIENT_SECRET", app["password"])
    monkeypatch.setenv("AZURE_TENANT_ID", kite.tenant)
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", kite.url)
    client = SecretClient(vault["properties"]["vaultUri"], DefaultAzureCredential(disable_instance_discovery=True, exclude_managed_identity_credential=True))
    with pytest.raises(HttpResponseError) as refused:
        client.set_secret("db", "v")
    message = str(refused.value)
    assert refused.value.status_code == 403 and refused.value.error.code == "Forbidden", message
    assert app["appId"] in message and "rbac-vault" in message and "setSecret/action" in message, message
    assert "uses RBAC authorization" in message and 'role "Key Vault Secrets Officer"' in message, "the reason names the role that would grant it"

    kite.cli("role", "assignment", "create", "--assignee", app["appId"], "--role", "Key Vault Secrets Officer", "--scope", vault["id"])
    assert client.set_secret("db", "v1").value == "v1"
    assert client.get_secret("db").value == "v1"
    check = kite.cli("role", "check", "--assignee", app["appId"], "--action", "Microsoft.KeyVault/vaults/secrets/getSecret/action",
                     "--data-action", "--scope", vault["id"])
    assert check["allowed"] is True and check["grantedBy"]["roleName"] == "Key Vault Secrets Officer"


def test_the_challenge_names_kites_authority_and_the_vault_resource(kite):
    import requests
    vault = make_vault(kite)
    uri = vault["properties"]["vaultUri"]
    answer = requests.get(f"{uri}secrets/x?api-version=7.4", verify=kite.ca)
    assert answer.status_code == 401
    port = kite.url.rsplit(":", 1)[1]
    assert answer.headers["WWW-Authenticate"] == f'Bearer authorization="{kite.url}/{kite.tenant}", resource="https://vault.localhost:{port}"'
    # A management token is not a vault token.
    token = ClientSecretCredential(kite.tenant, kite.creds["appId"], kite.creds["password"], authority=kite.url,
                                   disable_instance_discovery=True).get_token("https://management.azure.com/.default").token
    wrong = requests.get(f"{uri}secrets/x?api-version=7.4", headers={"Authorization": f"Bearer {token}"}, verify=kite.ca)
    assert wrong.status_code == 401 and "vault.localhost" in wrong.json()["error"]["message"]


def test_vaults_soft_delete_recover_and_purge_through_the_cli(kite):
    make_vault(kite, "short-lived")
    kite.cli("keyvault", "delete", "-n", "short-lived")
    assert kite.cli("keyvault", "list") == []
    assert [v["name"] for v in kite.cli("keyvault", "list-deleted")] == ["short-lived"]
    again = kite.cli("keyvault", "create", "-g", "pod-identity", "-n", "short-lived", check=False)
    assert again.returncode != 0 and "deleted state" in again.stderr
    kite.cli("keyvault", "recover", "-n", "short-lived")
    assert [v["name"] for v in kite.cli("keyvault", "list", "-g", "pod-identity")] == ["short-lived"]
    kite.cli("keyvault", "delete", "-n", "short-lived")
    kite.cli("keyvault", "purge", "-n", "short-lived")
    assert kite.cli("keyvault", "list-deleted") == []
    kite.cli("keyvault", "create", "-g", "pod-identity", "-n", "short-lived")
    kite.cli("keyvault", "secret", "set", "--vault-name", "short-lived", "-n", "kept", "--value", "still-here")

    # Deleting the group soft-deletes its vaults; made again, the group takes its vault back with its secrets.
    kite.cli("group", "delete", "-n", "pod-identity", "--yes")
    assert [v["name"] for v in kite.cli("keyvault", "list-deleted")] == ["short-lived"]
    kite.cli("group", "create", "-n", "pod-identity", "-l", "japaneast")
    kite.cli("keyvault", "recover", "-n", "short-lived")
    assert kite.cli("keyvault", "secret", "show", "--vault-name", "short-lived", "-n", "kept")["value"] == "still-here"


def test_kill_9_during_a_burst_of_writes_loses_no_acknowledged_write_and_the_file_holds_no_value(tmp_path, monkeypatch):
    import concurrent.futures
    import conftest

    kite = conftest.start(tmp_path, monkeypatch)
    vault = make_vault(kite, "burst-vault")
    app = app_with_reader(kite, "writer", vault)
    kite.cli("keyvault", "set-policy", "-n", "burst-vault", "--spn", app["appId"], "--secret-permissions", "get", "set", "list")
    cred = ClientSecretCredential(kite.tenant, app["appId"], app["password"], authority=kite.url, disable_instance_discovery=True)
    client = SecretClient(vault["properties"]["vaultUri"], cred, retry_total=0)  # a write the kill cut off fails at once
    client.set_secret("warm-up", "warm-up-value-0f3a")  # the challenge and token are settled before the burst

    acknowledged = {}

    def write(i):
        value = f"burst-value-{i}-7c1e9d"
        try:
            secret = client.set_secret(f"burst-{i % 5}", value)
        except Exception:  # the server died under this write: it was never acknowledged
            return
        acknowledged[(secret.name, secret.properties.version)] = value

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=8)
    for i in range(200):
        pool.submit(write, i)
    while len(acknowledged) < 40:
        time.sleep(0.005)
    kite.proc.kill()  # SIGKILL, mid-burst
    kite.proc.wait()
    pool.shutdown(wait=True, cancel_futures=True)
    kite.log.close()
    assert len(acknowledged) >= 40

    db = pathlib.Path(kite.home) / "kite.db"
    raw = db.read_bytes() + (db.with_name("kite.db-wal").read_bytes() if db.with_name("kite.db-wal").exists() else b"")
    for value in ["warm-up-value-0f3a", *acknowledged.values()]:
        assert value.encode() not in raw, "a secret value is in the database file in the clear"

    restarted = conftest.Kite(tmp_path, listen=kite.url.removeprefix("https://"))  # the admin credentials name this address
    try:
        vault = restarted.cli("keyvault", "show", "-n", "burst-vault")
        client = client_for(restarted, vault, app)
        for (name, version), value in acknowledged.items():
            assert client.get_secret(name, version).value == value
    finally:
        restarted.stop()


def test_a_bound_pod_reads_its_secret_with_managed_identity_credential_as_in_seed_001(tmp_path, kite_factory, monkeypatch):
    from azure.identity import ManagedIdentityCredential
    from test_pod_identity import IDENTITY, POD

    cluster = tmp_path / "cluster"
    cluster.mkdir()
    (cluster / "pod.yaml").write_text(POD.format(label="azure-vote"))
    kite = kite_factory("--pod-identity-dir", str(cluster), "--agent-listen", "127.0.0.1:0")
    vault = make_vault(kite)
    identity = kite.cli("identity", "create", "-g", "pod-identity", "-n", "azure-vote")
    (cluster / "identities.yaml").write_text(IDENTITY.format(name="azure-vote", resource_id=identity["id"], client_id=identity["clientId"], selector="azure-vote"))
    kite.cli("keyvault", "secret", "set", "--vault-name", "azure-vote", "-n", "redis-password", "--value", "seed-001-password")
    kite.cli("role", "assignment", "create", "--role", "Reader", "--assignee", identity["clientId"], "--scope", vault["id"])
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", kite.agent_url)  # the node agent's IMDS listener
    client = SecretClient(vault["properties"]["vaultUri"], ManagedIdentityCredential(client_id=identity["clientId"]))

    time.sleep(6)  # the agent re-reads the cluster state
    with pytest.raises(HttpResponseError) as refused:
        client.get_secret("redis-password")
    assert refused.value.status_code == 403 and identity["principalId"] in str(refused.value) and "no access policy" in str(refused.value)

    kite.cli("keyvault", "set-policy", "-n", "azure-vote", "--secret-permissions", "get", "--spn", identity["clientId"])
    assert client.get_secret("redis-password").value == "seed-001-password"
