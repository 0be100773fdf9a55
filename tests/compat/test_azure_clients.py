"""The unmodified Azure SDK (azure-identity, msal) and PyJWT against kite's token service."""
import datetime
import json
import ssl
import time

import jwt
import msal
import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import CertificateCredential, ClientSecretCredential, WorkloadIdentityCredential
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from issuer import Issuer

MGMT = "https://management.azure.com/.default"


def verify(kite, token, audience="https://management.azure.com", **options):
    """Verify a kite token as a relying party would: discovery, then the JWKS it names."""
    ctx = ssl.create_default_context(cafile=kite.ca)
    discovery = requests.get(f"{kite.url}/{kite.tenant}/v2.0/.well-known/openid-configuration", verify=kite.ca).json()
    jwks = jwt.PyJWKClient(discovery["jwks_uri"], ssl_context=ctx, cache_keys=False, cache_jwk_set=False)
    key = jwks.get_signing_key_from_jwt(token)
    return jwt.decode(token, key.key, algorithms=["RS256"], audience=audience, issuer=discovery["issuer"], options=options)


def sp(kite, name, *extra):
    return kite.cli("ad", "sp", "create-for-rbac", "--name", name, *extra)


def test_client_secret_credential_gets_a_token_the_management_api_accepts(kite):
    app = sp(kite, "secret-app", "--role", "Reader", "--scopes", f"/subscriptions/{kite.creds['subscription']}")
    cred = ClientSecretCredential(kite.tenant, app["appId"], app["password"], authority=kite.url, disable_instance_discovery=True)
    token = cred.get_token(MGMT)
    assert token.expires_on > time.time() + 300
    claims = verify(kite, token.token)
    assert claims["appid"] == app["appId"] and claims["tid"] == kite.tenant and claims["ver"] == "2.0"
    # The token works against kite's ARM-shaped API, and RBAC applies to it (Reader may read, not write).
    headers = {"Authorization": f"Bearer {token.token}"}
    groups = requests.get(f"{kite.url}/subscriptions/{kite.creds['subscription']}/resourceGroups", headers=headers, verify=kite.ca)
    assert groups.status_code == 200, groups.text
    denied = requests.put(f"{kite.url}/subscriptions/{kite.creds['subscription']}/resourceGroups/nope", json={"location": "westus2"}, headers=headers, verify=kite.ca)
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "AuthorizationFailed"


def test_msal_confidential_client_gets_a_token(kite):
    app = sp(kite, "msal-app")
    client = msal.ConfidentialClientApplication(app["appId"], client_credential=app["password"], authority=f"{kite.url}/{kite.tenant}", instance_discovery=False)
    result = client.acquire_token_for_client(scopes=[MGMT])
    assert "access_token" in result, result
    assert verify(kite, result["access_token"])["azp"] == app["appId"]
    wrong = msal.ConfidentialClientApplication(app["appId"], client_credential="not-the-secret", authority=f"{kite.url}/{kite.tenant}", instance_discovery=False)
    result = wrong.acquire_token_for_client(scopes=[MGMT])
    assert result["error"] == "invalid_client" and 7000215 in result["error_codes"], result


def test_an_expired_secret_raises_aadsts7000222_in_the_client(kite):
    end = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=3)).isoformat()
    app = sp(kite, "expiring-app", "--end-date", end)
    time.sleep(4)
    cred = ClientSecretCredential(kite.tenant, app["appId"], app["password"], authority=kite.url, disable_instance_discovery=True)
    with pytest.raises(ClientAuthenticationError) as raised:
        cred.get_token(MGMT)
    assert "AADSTS7000222" in str(raised.value)
    assert "expired" in str(raised.value)


def make_certificate(tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kite-compat")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30)).sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "both.pem").write_bytes(key_pem + cert_pem)
    return tmp_path / "cert.pem", tmp_path / "both.pem", key


def test_certificate_credential_signs_an_assertion_kite_verifies(kite, tmp_path):
    cert, both, key = make_certificate(tmp_path)
    app = sp(kite, "cert-app", "--cert", f"@{cert}")
    cred = CertificateCredential(kite.tenant, app["appId"], certificate_path=str(both), authority=kite.url, disable_instance_discovery=True)
    assert verify(kite, cred.get_token(MGMT).token)["appid"] == app["appId"]

    # An assertion aimed at another audience, or signed by a key kite does not know, is refused.
    endpoint = f"{kite.url}/{kite.tenant}/oauth2/v2.0/token"
    now = int(time.time())
    from base64 import urlsafe_b64encode
    from cryptography.hazmat.primitives.serialization import Encoding
    der = x509.load_pem_x509_certificate(cert.read_bytes()).public_bytes(Encoding.DER)
    digest = hashes.Hash(hashes.SHA1()); digest.update(der)
    x5t = urlsafe_b64encode(digest.finalize()).decode()
    def assertion(aud, signer):
        claims = {"aud": aud, "iss": app["appId"], "sub": app["appId"], "jti": str(now), "iat": now, "nbf": now, "exp": now + 600}
        return jwt.encode(claims, signer, algorithm="RS256", headers={"x5t": x5t})
    def post(a):
        form = {"grant_type": "client_credentials", "client_id": app["appId"], "scope": MGMT,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_assertion": a}
        return requests.post(endpoint, data=form, verify=kite.ca)
    assert post(assertion(endpoint, key)).status_code == 200
    wrong_aud = post(assertion("https://elsewhere/token", key)).json()
    assert wrong_aud["error_codes"] == [700027] and "audience" in wrong_aud["error_description"]
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = post(assertion(endpoint, stranger)).json()
    assert forged["error_codes"] == [700027] and "signature" in forged["error_description"]


@pytest.fixture
def kite(kite_factory):
    """The federated tests' issuer is plain http on loopback, which kite fetches only when told to."""
    return kite_factory("--allow-http-issuer")


@pytest.fixture
def issuer():
    i = Issuer()
    yield i
    i.close()


def workload_identity(kite, issuer, subject="system:serviceaccount:default:workload"):
    kite.cli("group", "create", "-n", "wi-rg", "-l", "japaneast")
    mi = kite.cli("identity", "create", "-g", "wi-rg", "-n", "wi-identity")
    kite.cli("identity", "federated-credential", "create", "--name", "kubernetes-federated", "--identity-name", "wi-identity",
             "-g", "wi-rg", "--issuer", issuer.url, "--subject", subject)
    return mi


def test_workload_identity_credential_exchanges_a_service_account_token(kite, issuer, tmp_path, monkeypatch):
    mi = workload_identity(kite, issuer)
    token_file = tmp_path / "token"
    token_file.write_text(issuer.token("system:serviceaccount:default:workload") + "\n")  # kubelet writes a trailing newline at times
    cred = WorkloadIdentityCredential(tenant_id=kite.tenant, client_id=mi["clientId"], token_file_path=str(token_file), authority=kite.url)
    claims = verify(kite, cred.get_token(MGMT).token)
    assert claims["oid"] == mi["principalId"] and claims["appid"] == mi["clientId"]

    # Through the environment, as the azure-workload-identity webhook injects it.
    monkeypatch.setenv("AZURE_TENANT_ID", kite.tenant)
    monkeypatch.setenv("AZURE_CLIENT_ID", mi["clientId"])
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", kite.url)
    assert verify(kite, WorkloadIdentityCredential().get_token(MGMT).token)["oid"] == mi["principalId"]


def test_federated_assertions_that_do_not_match_are_refused_with_their_aadsts_code(kite, issuer, tmp_path):
    mi = workload_identity(kite, issuer)
    token_file = tmp_path / "token"

    def attempt(assertion):
        token_file.write_text(assertion)
        cred = WorkloadIdentityCredential(tenant_id=kite.tenant, client_id=mi["clientId"], token_file_path=str(token_file), authority=kite.url)
        with pytest.raises(ClientAuthenticationError) as raised:
            cred.get_token(MGMT)
        return str(raised.value)

    assert "AADSTS70021" in attempt(issuer.token("system:serviceaccount:default:other"))
    assert "AADSTS70021" in attempt(issuer.token("system:serviceaccount:default:workload", iss=issuer.url + "/"))
    assert "AADSTS700212" in attempt(issuer.token("system:serviceaccount:default:workload", aud="api://wrong"))
    assert "AADSTS700024" in attempt(issuer.token("system:serviceaccount:default:workload", lifetime=-600))
    now = int(time.time())
    claims = {"iss": issuer.url, "sub": "system:serviceaccount:default:workload", "aud": "api://AzureADTokenExchange", "exp": now + 600}
    unsigned = attempt(jwt.encode(claims, None, algorithm="none"))
    assert "AADSTS50027" in unsigned and "none" in unsigned
    public_pem = issuer.key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    # Key confusion: HS256 keyed with the issuer's public key must not pass as the issuer's signature.
    import hmac, hashlib, base64
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    head = b64(json.dumps({"alg": "HS256", "kid": issuer.kid, "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = b64(hmac.new(public_pem, f"{head}.{body}".encode(), hashlib.sha256).digest())
    assert "AADSTS50013" in attempt(f"{head}.{body}.{sig}")


def test_tokens_verify_through_discovery_until_their_key_is_rotated_out(kite_factory):
    kite = kite_factory("--token-lifetime", "600", "--key-retire-grace", "0", movable_clock=True)
    app = sp(kite, "rotation-app")
    def token():
        return ClientSecretCredential(kite.tenant, app["appId"], app["password"], authority=kite.url, disable_instance_discovery=True).get_token(MGMT).token
    first = token()
    old_kid = jwt.get_unverified_header(first)["kid"]
    verify(kite, first)
    keys = kite.cli("keys", "rotate")
    assert sum(1 for k in keys if k["signing"]) == 1 and len(keys) == 2
    second = token()
    assert jwt.get_unverified_header(second)["kid"] != old_kid
    verify(kite, first)  # the old key is still published while its tokens live
    verify(kite, second)
    kite.advance_clock(601)  # every token the old key signed has now expired
    deadline = time.time() + 30
    while any(k["kid"] == old_kid for k in kite.cli("keys", "list")) and time.time() < deadline:
        time.sleep(1)
    assert not any(k["kid"] == old_kid for k in kite.cli("keys", "list")), "the old key should have retired"
    with pytest.raises(jwt.PyJWKClientError):
        verify(kite, first, verify_exp=False)


def test_an_app_can_trust_a_cluster_through_an_app_federated_credential(kite, issuer, tmp_path):
    app = sp(kite, "federated-app")
    params = tmp_path / "fic.json"
    params.write_text(json.dumps({"name": "github-main", "issuer": issuer.url, "subject": "repo:kite/kite:ref:refs/heads/main",
                                  "audiences": ["api://AzureADTokenExchange"], "description": "CI"}))
    kite.cli("ad", "app", "federated-credential", "create", "--id", app["appId"], "--parameters", f"@{params}")
    assert [f["name"] for f in kite.cli("ad", "app", "federated-credential", "list", "--id", app["appId"])] == ["github-main"]
    token_file = tmp_path / "token"
    token_file.write_text(issuer.token("repo:kite/kite:ref:refs/heads/main"))
    cred = WorkloadIdentityCredential(tenant_id=kite.tenant, client_id=app["appId"], token_file_path=str(token_file), authority=kite.url)
    assert verify(kite, cred.get_token(MGMT).token)["appid"] == app["appId"]
    kite.cli("ad", "app", "federated-credential", "delete", "--id", app["appId"], "--federated-credential-id", "github-main")
    cred = WorkloadIdentityCredential(tenant_id=kite.tenant, client_id=app["appId"], token_file_path=str(token_file), authority=kite.url)
    with pytest.raises(ClientAuthenticationError) as raised:
        cred.get_token(MGMT)
    assert "AADSTS70021" in str(raised.value)


def test_the_v1_endpoint_takes_resource_and_answers_like_entra_v1(kite):
    app = sp(kite, "v1-app")
    form = {"grant_type": "client_credentials", "client_id": app["appId"], "client_secret": app["password"], "resource": "https://vault.azure.net"}
    body = requests.post(f"{kite.url}/{kite.tenant}/oauth2/token", data=form, verify=kite.ca).json()
    assert body["token_type"] == "Bearer" and body["resource"] == "https://vault.azure.net"
    assert int(body["expires_on"]) > time.time() and isinstance(body["expires_in"], str)
    v1 = requests.get(f"{kite.url}/{kite.tenant}/.well-known/openid-configuration", verify=kite.ca).json()
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["iss"] == v1["issuer"] and claims["ver"] == "1.0" and claims["aud"] == "https://vault.azure.net"
    missing = requests.post(f"{kite.url}/{kite.tenant}/oauth2/v2.0/token", data={"client_id": app["appId"]}, verify=kite.ca).json()
    assert missing["error"] == "invalid_request" and missing["error_codes"] == [900144]
    other_tenant = requests.post(f"{kite.url}/common/oauth2/v2.0/token", data=form, verify=kite.ca).json()
    assert other_tenant["error_codes"] == [90002]
    unknown = requests.post(f"{kite.url}/{kite.tenant}/oauth2/token", data={**form, "client_id": "00000000-0000-0000-0000-000000000000"}, verify=kite.ca).json()
    assert unknown["error_codes"] == [700016]
