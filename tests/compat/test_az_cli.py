"""The real Azure CLI (azure-cli from PyPI) against kite, set up with the README's three commands
and nothing from outside kite, replaying the seeds' az lines (000, 001's management half, 002, 003)
and checking every answer; and azure-mgmt-authorization's role definition filter."""
import base64
import datetime
import json
import os
import subprocess
import sys
import time

import jwt
import requests

import msal
import pytest
from azure.identity import CertificateCredential, ClientSecretCredential
from azure.mgmt.authorization import AuthorizationManagementClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID



def ssh_public_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


class Az:
    """`az` run as a user would: its own config dir, kite's CA, no telemetry or surveys."""

    def __init__(self, kite, tmp_path):
        self.kite = kite
        home = tmp_path / "home"
        (home / ".ssh").mkdir(parents=True)
        # az aks create reads the user's public key (~/.ssh/id_rsa.pub), as on a workstation.
        (home / ".ssh" / "id_rsa.pub").write_text(ssh_public_key() + " kite-test\n")
        self.env = {
            **os.environ,
            "HOME": str(home),
            "AZURE_CONFIG_DIR": str(tmp_path / "azure"),
            "REQUESTS_CA_BUNDLE": kite.ca,
            "AZURE_CORE_COLLECT_TELEMETRY": "false",
            "AZURE_CORE_SURVEY_MESSAGE": "false",
            "AZURE_CORE_NO_COLOR": "true",
        }

    def run(self, *args, check=True):
        out = subprocess.run([sys.executable, "-m", "azure.cli", *args], env=self.env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
        if check and out.returncode != 0:
            raise AssertionError(f"az {' '.join(args)} failed ({out.returncode}):\n{out.stderr}")
        return out

    def json(self, *args):
        out = self.run(*args).stdout
        return json.loads(out) if out.strip() else None

    def tsv(self, *args):
        return self.run(*args, "-o", "tsv").stdout.strip()

    def sign_in(self, app_id, secret):
        """The README's three commands."""
        self.run("cloud", "register", "-n", "kite", "--endpoint-resource-manager", f"{self.kite.url}/")
        self.run("cloud", "set", "-n", "kite")
        self.run("config", "set", "core.instance_discovery=false")
        return self.json("login", "--service-principal", "-u", app_id, "-p", secret, "--tenant", self.kite.tenant)


@pytest.fixture
def az(kite, tmp_path):
    return Az(kite, tmp_path)


def token_works(kite, app_id, secret):
    client = msal.ConfidentialClientApplication(app_id, client_credential=secret, authority=f"{kite.url}/{kite.tenant}", instance_discovery=False)
    return "access_token" in client.acquire_token_for_client(scopes=[f"{kite.url}//.default"])


def test_the_cloud_az_registers_is_kite_and_nothing_else(az, kite):
    accounts = az.sign_in(kite.creds["appId"], kite.creds["password"])
    assert [a["id"] for a in accounts] == [kite.creds["subscription"]], accounts
    cloud = az.json("cloud", "show", "-n", "kite")
    assert cloud["endpoints"]["resourceManager"] == f"{kite.url}/"
    assert cloud["endpoints"]["activeDirectory"] == kite.url
    assert cloud["endpoints"]["microsoftGraphResourceId"] == f"{kite.url}/graph/"
    assert cloud["suffixes"]["keyvaultDns"] == ".vault.127.0.0.1"
    assert az.json("account", "show")["tenantId"] == kite.tenant


def test_the_seeds_az_lines_run_against_kite(az, kite):
    sub = kite.creds["subscription"]
    az.sign_in(kite.creds["appId"], kite.creds["password"])

    # Seed 002: groups and identities.
    group = az.json("group", "create", "--name", "myResourceGroup", "--location", "westus2")
    assert (group["name"], group["location"]) == ("myResourceGroup", "westus2")
    identity = az.json("identity", "create", "--name", "myIdentity", "--resource-group", "myResourceGroup")
    assert identity["id"] == f"/subscriptions/{sub}/resourcegroups/myResourceGroup/providers/Microsoft.ManagedIdentity/userAssignedIdentities/myIdentity"
    kubelet = az.json("identity", "create", "--name", "myKubeletIdentity", "--resource-group", "myResourceGroup")
    table = az.run("identity", "list", "--query", "[].{Name:name, Id:id, Location:location}", "-o", "table").stdout
    assert table.splitlines()[0].split() == ["Name", "Id", "Location"], table
    rows = {line.split()[0]: line.split()[1:] for line in table.splitlines()[2:]}
    assert rows["myIdentity"] == [identity["id"], "westus2"] and rows["myKubeletIdentity"] == [kubelet["id"], "westus2"], table

    # Seed 000, as written: today's az makes a managed-identity cluster by default.
    default = az.json("aks", "create", "--name", "myAKSCluster", "--resource-group", "myResourceGroup")
    assert default["identity"]["type"] == "SystemAssigned" and default["nodeResourceGroup"] == "MC_myResourceGroup_myAKSCluster_westus2", default
    # Seeds 000 and 002: a managed-identity cluster, and what az shows of it.
    cluster = az.json("aks", "create", "-g", "myResourceGroup", "-n", "myManagedCluster", "--enable-managed-identity")
    assert cluster["identity"]["type"] == "SystemAssigned", cluster["identity"]
    # az prints the model, so the unset secret shows as null, as against Azure.
    assert az.json("aks", "show", "-g", "myResourceGroup", "-n", "myManagedCluster", "--query", "servicePrincipalProfile") == {"clientId": "msi", "secret": None}
    assert az.json("aks", "show", "-g", "myResourceGroup", "-n", "myManagedCluster", "--query", "identity")["type"] == "SystemAssigned"
    node_rg = az.tsv("aks", "show", "-g", "myResourceGroup", "-n", "myManagedCluster", "--query", "nodeResourceGroup")
    assert node_rg == "MC_myResourceGroup_myManagedCluster_westus2"
    # Seed 002: a cluster with the user's own control-plane and kubelet identities.
    own = az.json("aks", "create", "--resource-group", "myResourceGroup", "--name", "myOwnIdentityCluster", "--enable-managed-identity",
                  "--assign-identity", identity["id"], "--assign-kubelet-identity", kubelet["id"])
    assert list(own["identity"]["userAssignedIdentities"]) == [identity["id"]], own["identity"]
    assert own["identityProfile"]["kubeletidentity"]["clientId"] == kubelet["clientId"]

    # Seed 002, as written: the network flags (the subnet's own range is not known to kite, which has no
    # virtual networks); az grants the identity Network Contributor on the subnet through kite first.
    subnet = f"/subscriptions/{sub}/resourceGroups/myResourceGroup/providers/Microsoft.Network/virtualNetworks/myVnet/subnets/default"
    network = ["--resource-group", "myResourceGroup", "--network-plugin", "azure", "--vnet-subnet-id", subnet,
               "--docker-bridge-address", "172.17.0.1/16", "--service-cidr", "10.2.0.0/24", "--enable-managed-identity", "--assign-identity", identity["id"]]
    refused = az.run("aks", "create", "--name", "myNetworkCluster", *network, "--dns-service-ip", "10.2.0.1", check=False)
    assert refused.returncode != 0 and "dnsServiceIP 10.2.0.1 is the first address of serviceCidr 10.2.0.0/24" in refused.stderr, refused.stderr
    refused = az.run("aks", "create", "--name", "myNetworkCluster", *network, "--dns-service-ip", "10.3.0.10", check=False)
    assert refused.returncode != 0 and "is not within serviceCidr 10.2.0.0/24" in refused.stderr, refused.stderr
    networked = az.json("aks", "create", "--name", "myNetworkCluster", *network, "--dns-service-ip", "10.2.0.10")
    profile = networked["networkProfile"]
    assert (profile["networkPlugin"], profile["serviceCidr"], profile["dnsServiceIp"]) == ("azure", "10.2.0.0/24", "10.2.0.10"), profile
    on_subnet = az.json("role", "assignment", "list", "--assignee", identity["clientId"], "--scope", subnet)
    assert [a["roleDefinitionName"] for a in on_subnet] == ["Network Contributor"], on_subnet

    # Seed 003: the kubelet identity gets roles on the node resource group, by client ID.
    kubelet_id = az.tsv("aks", "show", "-g", "myResourceGroup", "-n", "myManagedCluster", "--query", "identityProfile.kubeletidentity.clientId")
    kubelet_principal = az.tsv("identity", "show", "-g", node_rg, "-n", "myManagedCluster-agentpool", "--query", "principalId")
    for role in ("Managed Identity Operator", "Virtual Machine Contributor"):
        created = az.json("role", "assignment", "create", "--role", role, "--assignee", kubelet_id, "--scope", f"/subscriptions/{sub}/resourcegroups/{node_rg}")
        assert created["principalId"] == kubelet_principal, created
        assert created["roleDefinitionId"].endswith(az.tsv("role", "definition", "list", "--name", role, "--query", "[0].name")), created
    listed = az.json("role", "assignment", "list", "--assignee", kubelet_id, "--all")
    assert sorted(a["roleDefinitionName"] for a in listed) == ["Managed Identity Operator", "Virtual Machine Contributor"], listed
    assert {a["principalName"] for a in listed} == {kubelet_id}
    # Seed 003: an identity, and a role for it by name.
    az.json("group", "create", "-n", "Study4Dev-JE-AKS-Study4Dev-JE-AKSResource", "-l", "japaneast")
    demo = az.json("identity", "create", "-g", "Study4Dev-JE-AKS-Study4Dev-JE-AKSResource", "-n", "DEMO")
    assert az.tsv("identity", "show", "-g", "Study4Dev-JE-AKS-Study4Dev-JE-AKSResource", "-n", "DEMO", "--query", "clientId") == demo["clientId"]
    assert az.tsv("identity", "show", "-g", "Study4Dev-JE-AKS-Study4Dev-JE-AKSResource", "-n", "DEMO", "--query", "id") == demo["id"]
    scope = f"/subscriptions/{sub}/resourceGroups/Study4Dev-JE-AKS-Study4Dev-JE-AKSResource"
    assignment_id = az.tsv("role", "assignment", "create", "--role", "Reader", "--assignee", "DEMO", "--scope", scope, "--query", "id")
    assert assignment_id.startswith(f"{scope}/providers/Microsoft.Authorization/roleAssignments/"), assignment_id
    at_scope = az.json("role", "assignment", "list", "--assignee", demo["clientId"], "--scope", scope)
    assert [(a["roleDefinitionName"], a["principalId"]) for a in at_scope] == [("Reader", demo["principalId"])], at_scope
    az.run("role", "assignment", "delete", "--assignee", "DEMO", "--role", "Reader", "--scope", scope)
    assert az.json("role", "assignment", "list", "--assignee", demo["clientId"], "--scope", scope) == []

    # Seed 000: a service principal for RBAC, then a cluster on it, then its credentials renewed.
    rg_scope = f"/subscriptions/{sub}/resourceGroups/myResourceGroup"
    sp = az.json("ad", "sp", "create-for-rbac", "--name", "mysp", "--years", "2", "--role", "Contributor", "--scopes", rg_scope)
    assert (sp["displayName"], sp["tenant"]) == ("mysp", kite.tenant), sp
    assert token_works(kite, sp["appId"], sp["password"])
    secret = [c for c in az.json("ad", "sp", "credential", "list", "--id", sp["appId"])]
    assert len(secret) == 1 and secret[0]["displayName"] == "rbac" and secret[0]["endDateTime"][:4] == str(int(secret[0]["startDateTime"][:4]) + 2), secret
    roles = az.json("role", "assignment", "list", "--assignee", sp["appId"], "--scope", rg_scope)
    assert [a["roleDefinitionName"] for a in roles] == ["Contributor"], roles
    sp_cluster = az.json("aks", "create", "--name", "mySPCluster", "--resource-group", "myResourceGroup",
                         "--service-principal", sp["appId"], "--client-secret", sp["password"])
    assert sp_cluster["servicePrincipalProfile"]["clientId"] == sp["appId"]
    reset = az.json("ad", "sp", "credential", "reset", "--id", sp["appId"])
    assert reset["appId"] == sp["appId"] and reset["password"] != sp["password"]
    assert not token_works(kite, sp["appId"], sp["password"]) and token_works(kite, sp["appId"], reset["password"])
    az.run("aks", "update-credentials", "-g", "myResourceGroup", "-n", "mySPCluster", "--reset-service-principal",
           "--service-principal", sp["appId"], "--client-secret", reset["password"])
    # A wrong secret is refused by kite's check of the service principal.
    wrong = az.run("aks", "update-credentials", "-g", "myResourceGroup", "-n", "mySPCluster", "--reset-service-principal",
                   "--service-principal", sp["appId"], "--client-secret", sp["password"], check=False)
    assert wrong.returncode != 0 and "secret" in wrong.stderr.lower(), wrong.stderr

    # The app the seeds' user registered is theirs to remove.
    az.run("ad", "sp", "delete", "--id", sp["appId"])
    assert az.json("ad", "sp", "list", "--display-name", "mysp") == []


def self_signed(name):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=30)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM), key


def tmp_pem(az, data):
    path = os.path.join(az.env["HOME"], "rolled.pem")
    with open(path, "wb") as f:
        f.write(data)
    return path


def test_az_ad_manages_certificates_and_federated_credentials(az, kite):
    az.sign_in(kite.creds["appId"], kite.creds["password"])
    first = az.json("ad", "sp", "create-for-rbac", "--name", "ci-deployer")
    # Run again, az finds the app by name and renews its secret (PATCH, removePassword, addPassword).
    sp = az.json("ad", "sp", "create-for-rbac", "--name", "ci-deployer")
    assert sp["appId"] == first["appId"] and sp["password"] != first["password"]
    assert token_works(kite, sp["appId"], sp["password"]) and not token_works(kite, sp["appId"], first["password"])
    # A certificate az makes and uploads (PATCH keyCredentials) signs in through azure-identity.
    reset = az.json("ad", "sp", "credential", "reset", "--id", sp["appId"], "--create-cert")
    keys = az.json("ad", "sp", "credential", "list", "--id", sp["appId"], "--cert")
    assert len(keys) == 1 and keys[0]["type"] == "AsymmetricX509Cert", keys
    cred = CertificateCredential(kite.tenant, sp["appId"], reset["fileWithCertAndPrivateKey"], authority=kite.url, disable_instance_discovery=True)
    assert cred.get_token(f"{kite.url}//.default").token
    # The app rolls its own key with Graph's addKey, proving possession of the one it holds.
    pem = open(reset["fileWithCertAndPrivateKey"], "rb").read()
    graph = cred.get_token(f"{kite.url}/graph//.default").token
    app = requests.get(f"{kite.url}/graph/v1.0/applications?$filter=appId eq '{sp['appId']}'", headers={"Authorization": f"Bearer {graph}"}, verify=kite.ca).json()["value"][0]
    new_pem, new_key = self_signed("rolled")

    def add_key(signing_pem, aud="00000002-0000-0000-c000-000000000000"):
        cert = x509.load_pem_x509_certificate(signing_pem)
        key = serialization.load_pem_private_key(signing_pem, password=None) if b"PRIVATE KEY" in signing_pem else new_key
        x5t = base64.urlsafe_b64encode(cert.fingerprint(hashes.SHA1())).decode().rstrip("=")
        now = int(time.time())
        proof = jwt.encode({"aud": aud, "iss": app["id"], "nbf": now, "exp": now + 600}, key, algorithm="RS256", headers={"x5t": x5t})
        der = x509.load_pem_x509_certificate(new_pem).public_bytes(serialization.Encoding.DER)
        body = {"keyCredential": {"type": "AsymmetricX509Cert", "usage": "Verify", "key": base64.b64encode(der).decode()}, "passwordCredential": None, "proof": proof}
        return requests.post(f"{kite.url}/graph/v1.0/applications/{app['id']}/addKey", json=body, headers={"Authorization": f"Bearer {graph}"}, verify=kite.ca)

    refused = add_key(new_pem)  # signed by the certificate it would add: no proof of possession
    assert refused.status_code == 400 and "does not hold" in refused.json()["error"]["message"], refused.text
    refused = add_key(pem, aud="api://somewhere")
    assert refused.status_code == 400 and "audience" in refused.json()["error"]["message"], refused.text
    added = add_key(pem)
    assert added.status_code == 200 and added.json()["type"] == "AsymmetricX509Cert", added.text
    rolled = tmp_pem(az, new_pem + new_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    assert CertificateCredential(kite.tenant, sp["appId"], rolled, authority=kite.url, disable_instance_discovery=True).get_token(f"{kite.url}//.default").token
    assert len(az.json("ad", "sp", "credential", "list", "--id", sp["appId"], "--cert")) == 2
    # Federated credentials through Graph, as `az ad app federated-credential` sends them.
    params = {"name": "github", "issuer": "https://token.actions.githubusercontent.com", "subject": "repo:org/app:ref:refs/heads/main",
              "audiences": ["api://AzureADTokenExchange"], "description": "main branch"}
    created = az.json("ad", "app", "federated-credential", "create", "--id", sp["appId"], "--parameters", json.dumps(params))
    assert (created["name"], created["subject"]) == ("github", params["subject"]), created
    listed = az.json("ad", "app", "federated-credential", "list", "--id", sp["appId"])
    assert [f["issuer"] for f in listed] == [params["issuer"]]
    assert az.json("ad", "app", "federated-credential", "show", "--id", sp["appId"], "--federated-credential-id", "github")["description"] == "main branch"
    az.run("ad", "app", "federated-credential", "delete", "--id", sp["appId"], "--federated-credential-id", "github")
    assert az.json("ad", "app", "federated-credential", "list", "--id", sp["appId"]) == []


def test_seed_002_add_ons_get_their_identities_and_roles(az, kite):
    sub = kite.creds["subscription"]
    az.sign_in(kite.creds["appId"], kite.creds["password"])
    az.json("group", "create", "--name", "myResourceGroup", "--location", "westus2")
    az.json("group", "create", "--name", "netrg", "--location", "westus2")
    appgw = f"/subscriptions/{sub}/resourceGroups/netrg/providers/Microsoft.Network/applicationGateways/myApplicationGateway"
    subnet = f"/subscriptions/{sub}/resourceGroups/myResourceGroup/providers/Microsoft.Network/virtualNetworks/myVnet/subnets/default"
    # Seed 002's add-ons but monitoring, which az itself refuses for any cloud it does not know ("AKS Monitoring addon not supported in cloud").
    cluster = az.json("aks", "create", "-g", "myResourceGroup", "-n", "myManagedCluster", "--enable-managed-identity", "--network-plugin", "azure",
                      "--vnet-subnet-id", subnet, "--enable-addons", "ingress-appgw,http_application_routing,virtual-node,azure-keyvault-secrets-provider",
                      "--appgw-id", appgw, "--aci-subnet-name", "aci")
    node_rg = cluster["nodeResourceGroup"]
    identities = {m["clientId"]: m for m in az.json("identity", "list", "-g", node_rg)}
    by_name = {m["name"]: m for m in identities.values()}
    assert sorted(by_name) == sorted(["myManagedCluster-agentpool", "ingressapplicationgateway-myManagedCluster", "httpapplicationrouting-myManagedCluster",
                                      "aciconnectorlinux-myManagedCluster", "azurekeyvaultsecretsprovider-myManagedCluster"]), by_name
    for key, name in [("ingressApplicationGateway", "ingressapplicationgateway"), ("azureKeyvaultSecretsProvider", "azurekeyvaultsecretsprovider")]:
        assert cluster["addonProfiles"][key]["identity"]["clientId"] == by_name[f"{name}-myManagedCluster"]["clientId"], cluster["addonProfiles"]
    held = {}
    for a in az.json("role", "assignment", "list", "--all"):
        if a["principalName"] in identities:
            held.setdefault(identities[a["principalName"]]["name"], set()).add((a["roleDefinitionName"], a["scope"].lower()))
    node_scope = f"/subscriptions/{sub}/resourcegroups/{node_rg}".lower()
    # Seed 002's table (kite), and the Network Contributor az grants on the application gateway's group.
    assert held["ingressapplicationgateway-myManagedCluster"] == {("Contributor", node_scope), ("Network Contributor", f"/subscriptions/{sub}/resourcegroups/netrg")}, held
    assert held["httpapplicationrouting-myManagedCluster"] == {("Reader", node_scope)}, held
    assert ("Contributor", node_scope) in held["aciconnectorlinux-myManagedCluster"], held
    assert "azurekeyvaultsecretsprovider-myManagedCluster" not in held, held


def test_seed_002_moves_a_service_principal_cluster_to_managed_identity(az, kite):
    az.sign_in(kite.creds["appId"], kite.creds["password"])
    az.json("group", "create", "--name", "myResourceGroup", "--location", "westus2")
    sp = az.json("ad", "sp", "create-for-rbac", "--name", "aks-sp")
    az.json("aks", "create", "-g", "myResourceGroup", "-n", "myAKSCluster", "--service-principal", sp["appId"], "--client-secret", sp["password"])
    # az reads the cluster (its agent pools included: kite keeps them as sent) and PUTs it back changed.
    updated = az.json("aks", "update", "-g", "myResourceGroup", "-n", "myAKSCluster", "--enable-managed-identity", "--yes")
    assert updated["agentPoolProfiles"][0]["name"] == "nodepool1", updated["agentPoolProfiles"]
    assert updated["identity"]["type"] == "SystemAssigned" and updated["servicePrincipalProfile"]["clientId"] == "msi", updated


def test_azure_mgmt_authorization_filters_role_definitions_by_name(kite):
    cred = ClientSecretCredential(kite.tenant, kite.creds["appId"], kite.creds["password"], authority=kite.url, disable_instance_discovery=True)
    client = AuthorizationManagementClient(cred, kite.creds["subscription"], base_url=f"{kite.url}/", credential_scopes=[f"{kite.url}//.default"])
    scope = f"/subscriptions/{kite.creds['subscription']}"
    found = list(client.role_definitions.list(scope, filter="roleName eq 'Reader'"))
    assert [(d.role_name, d.name) for d in found] == [("Reader", "acdd72a7-3385-48ef-bd42-f606fba81ae7")]
    assert len(list(client.role_definitions.list(scope))) > 20


def test_arm_listings_page_with_top_and_next_link_and_refuse_filters_they_do_not_take(kite):
    from azure.core.exceptions import HttpResponseError
    from azure.mgmt.resource import ResourceManagementClient
    cred = ClientSecretCredential(kite.tenant, kite.creds["appId"], kite.creds["password"], authority=kite.url, disable_instance_discovery=True)
    client = ResourceManagementClient(cred, kite.creds["subscription"], base_url=f"{kite.url}/", credential_scopes=[f"{kite.url}//.default"])
    for i in range(5):
        client.resource_groups.create_or_update(f"page-{i}", {"location": "westus2", "tags": {"env": "prod" if i % 2 else "dev"}})
    pages = [[g.name for g in page] for page in client.resource_groups.list(top=2).by_page()]
    assert [len(p) for p in pages] == [2, 2, 1], pages
    assert sorted(n for p in pages for n in p) == [f"page-{i}" for i in range(5)]
    # az group list --tag env=prod
    assert sorted(g.name for g in client.resource_groups.list(filter="tagName eq 'env' and tagValue eq 'prod'")) == ["page-1", "page-3"]
    with pytest.raises(HttpResponseError) as refused:
        list(client.resource_groups.list(filter="location eq 'westus2'"))
    assert refused.value.error.code == "InvalidFilter" and "location eq 'westus2'" in refused.value.error.message


def test_az_keyvault_create_show_set_policy_delete_recover_purge(kite, az):
    """Seed 001's vault lines with the real az (azure-mgmt-keyvault's shapes and api-version)."""
    az.sign_in(kite.creds["appId"], kite.creds["password"])
    az.run("group", "create", "-n", "pod-identity", "-l", "japaneast")
    identity = az.json("identity", "create", "-g", "pod-identity", "-n", "azure-vote")
    az.run("keyvault", "create", "-g", "pod-identity", "-n", "azure-vote", "-l", "japaneast", "--enable-rbac-authorization", "false")
    shown = az.json("keyvault", "show", "--name", "azure-vote")
    port = kite.url.rsplit(":", 1)[1]
    assert shown["properties"]["vaultUri"] == f"https://azure-vote.vault.localhost:{port}/"
    assert az.tsv("keyvault", "show", "--name", "azure-vote", "--query", "properties.tenantId") == kite.tenant
    az.run("keyvault", "set-policy", "-n", "azure-vote", "--secret-permissions", "get", "--spn", identity["clientId"])
    policies = az.json("keyvault", "show", "--name", "azure-vote", "--query", "properties.accessPolicies")
    mine = [p for p in policies if p["objectId"] == identity["principalId"]]
    assert len(mine) == 1 and mine[0]["permissions"]["secrets"] == ["get"], policies
    az.run("keyvault", "delete-policy", "-n", "azure-vote", "--spn", identity["clientId"])
    policies = az.json("keyvault", "show", "--name", "azure-vote", "--query", "properties.accessPolicies")
    assert all(p["objectId"] != identity["principalId"] for p in policies)
    az.run("keyvault", "delete", "-n", "azure-vote")
    assert [v["name"] for v in az.json("keyvault", "list-deleted")] == ["azure-vote"]
    az.run("keyvault", "recover", "-n", "azure-vote")
    assert [v["name"] for v in az.json("keyvault", "list")] == ["azure-vote"]
    az.run("keyvault", "delete", "-n", "azure-vote")
    az.run("keyvault", "purge", "-n", "azure-vote")
    assert az.json("keyvault", "list-deleted") == []
