"""kite-issued access tokens at the TokenReview webhook, as AKS-managed AAD clusters take Entra
tokens: azure-identity gets a token for the cluster's server app ID (what kubelogin requests), and
/authenticate maps its principal to a Kubernetes username and groups."""
import datetime
import time

import jwt
import requests
from azure.identity import ClientSecretCredential
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

AKS_SERVER_APP = "6dae42f8-4368-4678-94ff-3960e28e3630"


def review(kite, token):
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
    answer = requests.post(f"{kite.url}/authenticate", json=body, verify=kite.ca)
    assert answer.status_code == 200, answer.text
    return answer.json()["status"]


def token_for(kite, app, scope):
    cred = ClientSecretCredential(kite.tenant, app["appId"], app["password"], authority=kite.url, disable_instance_discovery=True)
    return cred.get_token(scope).token


def test_an_azure_identity_token_for_the_cluster_is_mapped_and_others_are_refused_with_the_reason(tmp_path, kite_factory):
    mapping = tmp_path / "entra-mapping.yaml"
    mapping.write_text("principals: []\n")
    kite = kite_factory("--entra-audience", AKS_SERVER_APP, "--entra-mapping", str(mapping))
    app = kite.cli("ad", "sp", "create-for-rbac", "--name", "aks-deployer")
    oid = kite.cli("ad", "sp", "show", "--id", app["appId"])["id"]
    token = token_for(kite, app, f"{AKS_SERVER_APP}/.default")

    unmapped = review(kite, token)
    assert unmapped.get("authenticated") is not True
    # The API server relays refusals to its clients: the file is named by its flag, its path stays in kite's log.
    assert f"no mapping for oid {oid}" in unmapped["error"] and "--entra-mapping" in unmapped["error"], unmapped
    assert str(tmp_path) not in unmapped["error"], unmapped

    mapping.write_text(f"principals:\n- objectId: {oid}\n  username: deployer\n  groups: [aks-deployers]\n")
    time.sleep(6)  # the server re-reads the mapping
    status = review(kite, token)
    assert status["authenticated"] is True, status
    assert (status["user"]["username"], status["user"]["groups"], status["user"]["uid"]) == ("deployer", ["aks-deployers"], oid)
    assert status["user"]["extra"]["appid"] == [app["appId"]]

    # A broken mapping is refused whole; the last good one stays in force.
    mapping.write_text("principals:\n- username: nobody\n")
    time.sleep(6)
    assert review(kite, token)["authenticated"] is True
    assert "last good one stays" in (tmp_path / "server.log").read_text()

    mgmt = review(kite, token_for(kite, app, "https://management.azure.com/.default"))
    assert f"but this cluster accepts '{AKS_SERVER_APP}'" in mgmt["error"], mgmt

    # Tokens kite did not issue: another issuer, or kite's issuer with a key kite never published.
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    now = datetime.datetime.now(datetime.timezone.utc)
    claims = jwt.decode(token, options={"verify_signature": False})
    foreign = jwt.encode({**claims, "iss": "https://login.microsoftonline.com/x/v2.0"}, pem, algorithm="RS256", headers={"kid": "k1"})
    assert "is not this kite" in review(kite, foreign)["error"]
    forged = jwt.encode({**claims, "exp": int((now + datetime.timedelta(hours=1)).timestamp())}, pem, algorithm="RS256", headers={"kid": "not-kites"})
    assert "signing key 'not-kites' is not (or no longer) published" in review(kite, forged)["error"]
    assert "neither an `aws eks get-token` token nor a JWT" in review(kite, "garbage")["error"]


def test_without_a_mapping_the_username_is_the_object_id_and_expired_tokens_say_when(kite_factory):
    kite = kite_factory("--entra-audience", AKS_SERVER_APP, "--token-lifetime", "600", movable_clock=True)
    app = kite.cli("ad", "sp", "create-for-rbac", "--name", "aks-reader")
    oid = kite.cli("ad", "sp", "show", "--id", app["appId"])["id"]
    token = token_for(kite, app, f"{AKS_SERVER_APP}/.default")
    status = review(kite, token)
    assert status["authenticated"] is True, status
    assert (status["user"]["username"], status["user"]["groups"]) == (oid, [])
    kite.advance_clock(601)
    expired = review(kite, token)
    assert expired.get("authenticated") is not True
    exp = datetime.datetime.fromtimestamp(jwt.decode(token, options={"verify_signature": False})["exp"], datetime.timezone.utc)
    assert f"the token expired at {exp.strftime('%Y-%m-%dT%H:%M:%S')}" in expired["error"], expired
