"""The unmodified AWS SDK (boto3) against kite's STS-shaped endpoint: web identity federation
(IRSA's AssumeRoleWithWebIdentity) and a SigV4-signed GetCallerIdentity with the result."""
import json

import boto3
import botocore.exceptions
import pytest

from issuer import Issuer

SA = "system:serviceaccount:default:s3-reader"


@pytest.fixture
def world(tmp_path, kite_factory):
    issuer = Issuer(tmp_path)
    kite = kite_factory("--issuer-ca-file", str(issuer.ca_file), "--allow-http-issuer")
    provider = kite.cli("iam", "oidc-provider", "create", "--url", issuer.url, "--client-id-list", "sts.amazonaws.com")
    host = issuer.url.removeprefix("https://")
    policy = {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": provider["Arn"]},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {f"{host}:sub": SA, f"{host}:aud": "sts.amazonaws.com"}},
        }],
    }
    (tmp_path / "trust.json").write_text(json.dumps(policy))
    role = kite.cli("iam", "role", "create", "--role-name", "s3-reader", "--trust-policy", f"file://{tmp_path / 'trust.json'}")["Role"]
    yield kite, issuer, role, provider
    issuer.close()


def sts(kite, **creds):
    return boto3.client("sts", endpoint_url=kite.url, region_name="us-east-1", verify=kite.ca,
                        aws_access_key_id=creds.get("AccessKeyId", "unused"), aws_secret_access_key=creds.get("SecretAccessKey", "unused"),
                        aws_session_token=creds.get("SessionToken"))


def test_boto3_assumes_a_role_with_a_service_account_token_and_is_who_sts_says(world):
    kite, issuer, role, provider = world
    out = sts(kite).assume_role_with_web_identity(RoleArn=role["Arn"], RoleSessionName="pod-1", WebIdentityToken=issuer.token(SA, aud="sts.amazonaws.com"))
    creds = out["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA") and creds["SessionToken"] and creds["SecretAccessKey"]
    assert out["AssumedRoleUser"]["Arn"] == role["Arn"].replace(":iam::", ":sts::").replace(":role/", ":assumed-role/") + "/pod-1"
    assert out["SubjectFromWebIdentityToken"] == SA and out["Audience"] == "sts.amazonaws.com"
    assert out["Provider"] == provider["Arn"]
    me = sts(kite, **creds).get_caller_identity()
    assert me["Arn"] == out["AssumedRoleUser"]["Arn"]
    assert me["UserId"] == out["AssumedRoleUser"]["AssumedRoleId"]
    assert me["Account"] == role["Arn"].split(":")[4]


def test_sts_refusals_name_their_reason(world):
    kite, issuer, role, _ = world
    def refused(token, code, **kw):
        with pytest.raises(botocore.exceptions.ClientError) as raised:
            sts(kite).assume_role_with_web_identity(RoleArn=kw.get("arn", role["Arn"]), RoleSessionName="session", WebIdentityToken=token)
        assert raised.value.response["Error"]["Code"] == code, raised.value.response
        return raised.value.response["Error"]["Message"]
    msg = refused(issuer.token("system:serviceaccount:default:intruder", aud="sts.amazonaws.com"), "AccessDenied")
    assert "system:serviceaccount:default:intruder" in msg
    assert "Incorrect token audience" in refused(issuer.token(SA, aud="api://AzureADTokenExchange"), "InvalidIdentityToken")
    assert refused(issuer.token(SA, aud="sts.amazonaws.com", lifetime=-60), "ExpiredTokenException")
    assert refused(issuer.token(SA, aud="sts.amazonaws.com", iss=issuer.url + "/"), "InvalidIdentityToken")

    # Credentials that were tampered with do not sign: SignatureDoesNotMatch from GetCallerIdentity.
    creds = sts(kite).assume_role_with_web_identity(RoleArn=role["Arn"], RoleSessionName="session", WebIdentityToken=issuer.token(SA, aud="sts.amazonaws.com"))["Credentials"]
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        sts(kite, **{**creds, "SecretAccessKey": "x" * 40}).get_caller_identity()
    assert raised.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
