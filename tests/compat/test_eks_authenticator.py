"""awscli's `aws eks get-token` against kite's STS, and kite's TokenReview webhook mapping the
token through aws-auth, as aws-iam-authenticator would for a real EKS cluster (seed 004)."""
import base64
import json
import os
import pathlib
import subprocess
import sys
import time

import boto3
import botocore.exceptions
import pytest
import requests

import conftest
from issuer import Issuer

SA = "system:serviceaccount:default:deployer"
AWS = os.path.join(os.path.dirname(sys.executable), "aws")


def aws_auth(path, role_arn):
    mapping = [{"rolearn": role_arn, "username": "deployer:{{SessionName}}", "groups": ["eks-console-dashboard-full-access-group"]}]
    path.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: aws-auth\n  namespace: kube-system\ndata:\n  mapRoles: |\n"
        + "".join("    " + line + "\n" for line in json.dumps(mapping, indent=2).splitlines())
    )


@pytest.fixture
def eks(tmp_path, kite_factory):
    issuer = Issuer(tmp_path)
    auth_file = tmp_path / "aws-auth.yaml"
    auth_file.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: aws-auth\n  namespace: kube-system\ndata: {}\n")
    kite = kite_factory("--issuer-ca-file", str(issuer.ca_file), "--allow-http-issuer", "--eks-cluster", "prod", "--aws-auth", str(auth_file))
    provider = kite.cli("iam", "oidc-provider", "create", "--url", issuer.url, "--client-id-list", "sts.amazonaws.com")
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Federated": provider["Arn"]},
              "Action": "sts:AssumeRoleWithWebIdentity"}]}
    (tmp_path / "trust.json").write_text(json.dumps(policy))
    role = kite.cli("iam", "role", "create", "--role-name", "eks6248", "--trust-policy", f"file://{tmp_path / 'trust.json'}")["Role"]
    sts = boto3.client("sts", endpoint_url=kite.url, region_name="us-east-1", verify=kite.ca, aws_access_key_id="x", aws_secret_access_key="x")
    creds = sts.assume_role_with_web_identity(RoleArn=role["Arn"], RoleSessionName="ci@example.com",
                                              WebIdentityToken=issuer.token(SA, aud="sts.amazonaws.com"))["Credentials"]
    yield kite, creds, role, auth_file
    issuer.close()


def get_token(kite, creds, cluster="prod", secret=None):
    env = {**os.environ, "AWS_ACCESS_KEY_ID": creds["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": secret or creds["SecretAccessKey"],
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_STS": kite.url,
           "AWS_CA_BUNDLE": kite.ca, "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
    env.pop("AWS_SESSION_TOKEN", None)
    if "SessionToken" in creds:
        env["AWS_SESSION_TOKEN"] = creds["SessionToken"]
    out = subprocess.run([AWS, "eks", "get-token", "--cluster-name", cluster], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["status"]["token"]


def review(kite, token):
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
    return requests.post(f"{kite.url}/authenticate", json=body, verify=kite.ca).json()["status"]


def can_i_get_pods(user):
    rbac = str(pathlib.Path(__file__).resolve().parents[2] / "crates/kite-k8s/tests/fixtures/eks")
    return subprocess.run([conftest.BIN, "k8s", "auth", "can-i", "get", "pods", "-n", "kube-system", "--as", user["username"],
                           *sum((["--as-group", g] for g in user["groups"]), []), "--rbac", rbac], capture_output=True, text=True)


def test_seed_004_iam_user_6248_is_refused_until_aws_auth_maps_it_then_may_get_pods(eks):
    kite, _, _, auth_file = eks
    # The worker of seed 004: an IAM user with static keys, not a role session.
    user = kite.cli("iam", "user", "create", "--user-name", "6248")["User"]
    key = kite.cli("iam", "access-key", "create", "--user-name", "6248")["AccessKey"]
    assert key["Status"] == "Active" and len(key["SecretAccessKey"]) == 40
    listed = kite.cli("iam", "access-key", "list", "--user-name", "6248")["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in listed] == [key["AccessKeyId"]] and "SecretAccessKey" not in listed[0]

    # Step 2 of the seed: who am I? boto3 with the user's keys, against kite's STS.
    sts = boto3.client("sts", endpoint_url=kite.url, region_name="us-east-1", verify=kite.ca,
                       aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
    me = sts.get_caller_identity()
    assert (me["Arn"], me["UserId"]) == (user["Arn"], user["UserId"])

    token = get_token(kite, key)
    status = review(kite, token)
    assert status.get("authenticated") is not True
    assert user["Arn"] in status["error"], status  # the refusal names the ARN it saw

    # Step 3: eksctl's fix, through kite.
    kite.cli("eks", "iamidentitymapping", "create", "--cluster", "prod", "--aws-auth", str(auth_file), "--arn", user["Arn"],
             "--username", "6248", "--group", "eks-console-dashboard-full-access-group")
    rows = kite.cli("eks", "iamidentitymapping", "list", "--cluster", "prod", "--aws-auth", str(auth_file))
    assert [r["arn"] for r in rows] == [user["Arn"]]
    time.sleep(6)  # the server re-reads aws-auth
    status = review(kite, token)
    assert status["authenticated"] is True, status
    assert status["user"]["username"] == "6248"
    assert status["user"]["groups"] == ["eks-console-dashboard-full-access-group"]
    assert status["user"]["uid"] == f"aws-iam-authenticator:{me['Account']}:{user['UserId']}"
    assert status["user"]["extra"]["accessKeyId"] == [key["AccessKeyId"]]

    out = can_i_get_pods(status["user"])
    assert (out.returncode, out.stdout.strip()) == (0, "yes"), out.stderr

    # A typo in aws-auth is refused as a whole: the mapping in force stays, nobody is locked out.
    auth_file.write_text(auth_file.read_text().replace("userarn", "userarm"))
    time.sleep(6)
    assert review(kite, token)["authenticated"] is True

    # The user cannot be deleted while it has keys; a deleted key stops working at once.
    refused = kite.cli("iam", "user", "delete", "--user-name", "6248", check=False)
    assert refused.returncode != 0 and key["AccessKeyId"] in refused.stderr, refused.stderr
    kite.cli("iam", "access-key", "delete", "--access-key-id", key["AccessKeyId"], "--user-name", "6248")
    gone = review(kite, token)
    assert gone.get("authenticated") is not True and "does not exist" in gone["error"], gone
    with pytest.raises(botocore.exceptions.ClientError, match="InvalidClientTokenId"):
        sts.get_caller_identity()
    kite.cli("iam", "user", "delete", "--user-name", "6248")
    assert kite.cli("iam", "user", "list")["Users"] == []


def test_a_role_session_token_is_mapped_through_map_roles_with_its_session_name(eks):
    kite, creds, role, auth_file = eks
    token = get_token(kite, creds)
    assert role["Arn"] in review(kite, token)["error"]
    kite.cli("eks", "iamidentitymapping", "create", "--cluster", "prod", "--aws-auth", str(auth_file), "--arn", role["Arn"],
             "--username", "deployer:{{SessionName}}", "--group", "eks-console-dashboard-full-access-group")
    time.sleep(6)
    status = review(kite, token)
    assert status["authenticated"] is True, status
    assert status["user"]["username"] == "deployer:ci-example.com"  # {{SessionName}} turns '@' into '-'
    assert status["user"]["extra"]["canonicalArn"] == [role["Arn"]]
    assert status["user"]["extra"]["sessionName"] == ["ci@example.com"]
    assert can_i_get_pods(status["user"]).returncode == 0


def test_tokens_for_another_cluster_tampered_or_signed_wrongly_are_refused_with_the_rule(eks):
    kite, creds, role, auth_file = eks
    aws_auth(auth_file, role["Arn"])
    time.sleep(6)
    other = review(kite, get_token(kite, creds, cluster="staging"))
    assert other.get("authenticated") is not True and "SignatureDoesNotMatch" in other["error"], other

    token = get_token(kite, creds)
    url = base64.urlsafe_b64decode(token.removeprefix("k8s-aws-v1.") + "==").decode()
    tampered = "k8s-aws-v1." + base64.urlsafe_b64encode((url + "&Extra=1").encode()).decode().rstrip("=")
    assert "Extra" in review(kite, tampered)["error"]

    wrong = review(kite, get_token(kite, creds, secret="x" * 40))
    assert "SignatureDoesNotMatch" in wrong["error"]
    assert review(kite, "not-a-token")["error"]


def test_access_entries_map_callers_in_api_mode(tmp_path, kite_factory):
    issuer = Issuer(tmp_path)
    entries = tmp_path / "access-entries.json"
    entries.write_text("[]")
    kite = kite_factory("--issuer-ca-file", str(issuer.ca_file), "--allow-http-issuer", "--eks-cluster", "prod", "--access-entries", str(entries),
                        "--authentication-mode", "API")
    provider = kite.cli("iam", "oidc-provider", "create", "--url", issuer.url, "--client-id-list", "sts.amazonaws.com")
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Federated": provider["Arn"]}, "Action": "sts:AssumeRoleWithWebIdentity"}]}
    (tmp_path / "trust.json").write_text(json.dumps(policy))
    role = kite.cli("iam", "role", "create", "--role-name", "viewer", "--trust-policy", f"file://{tmp_path / 'trust.json'}")["Role"]
    sts = boto3.client("sts", endpoint_url=kite.url, region_name="us-east-1", verify=kite.ca, aws_access_key_id="x", aws_secret_access_key="x")
    creds = sts.assume_role_with_web_identity(RoleArn=role["Arn"], RoleSessionName="alice", WebIdentityToken=issuer.token(SA, aud="sts.amazonaws.com"))["Credentials"]
    token = get_token(kite, creds)
    assert review(kite, token).get("authenticated") is not True
    kite.cli("eks", "access-entry", "create", "--cluster", "prod", "--access-entries", str(entries), "--principal-arn", role["Arn"],
             "--kubernetes-groups", "viewers", "--policy-arn", "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy", "--namespaces", "default")
    time.sleep(6)
    status = review(kite, token)
    assert status["authenticated"] is True, status
    assert status["user"]["groups"] == ["viewers"]
    issuer.close()


def token_signed_minutes_ago(kite, key, minutes, monkeypatch):
    """A token made by awscli's own TokenGenerator (what `aws eks get-token` runs), with botocore's
    signing clock set back: botocore.auth reads the time through get_current_datetime."""
    import datetime

    import botocore.auth
    import botocore.session
    from awscli.customizations.eks.get_token import STSClientFactory, TokenGenerator

    signed_at = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=minutes)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda remove_tzinfo=True: signed_at.replace(tzinfo=None) if remove_tzinfo else signed_at)
    for name, value in {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
                        "AWS_ENDPOINT_URL_STS": kite.url, "AWS_CA_BUNDLE": kite.ca, "AWS_CONFIG_FILE": os.devnull,
                        "AWS_SHARED_CREDENTIALS_FILE": os.devnull}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    sts = STSClientFactory(botocore.session.get_session()).get_sts_client(region_name="us-east-1")
    token = TokenGenerator(sts).get_token("prod")
    url = base64.urlsafe_b64decode(token.removeprefix("k8s-aws-v1.") + "==").decode()
    assert f"X-Amz-Date={signed_at.strftime('%Y%m%dT%H%M')}" in url, url  # the patch reached the signer
    return token


def test_a_get_token_token_is_accepted_for_15_minutes_after_signing_and_refused_after(eks, monkeypatch):
    kite, _, _, auth_file = eks
    user = kite.cli("iam", "user", "create", "--user-name", "kubectl-cache")["User"]
    key = kite.cli("iam", "access-key", "create", "--user-name", "kubectl-cache")["AccessKey"]
    kite.cli("eks", "iamidentitymapping", "create", "--cluster", "prod", "--aws-auth", str(auth_file), "--arn", user["Arn"],
             "--username", "cached", "--group", "viewers")
    time.sleep(6)

    fresh_enough = review(kite, token_signed_minutes_ago(kite, key, 14, monkeypatch))
    assert fresh_enough["authenticated"] is True, fresh_enough
    assert fresh_enough["user"]["username"] == "cached"

    stale = review(kite, token_signed_minutes_ago(kite, key, 16, monkeypatch))
    assert stale.get("authenticated") is not True
    assert "Signature expired" in stale["error"] and "valid for 900 seconds" in stale["error"], stale
