"""boto3 and awscli, unmodified, getting a pod's credentials the EKS Pod Identity way: the
container credential provider (AWS_CONTAINER_CREDENTIALS_FULL_URI + AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE)
against kite's /v1/credentials, with a projected service-account token from a cluster issuer.

botocore fetches container credentials with its own bundled CA list (custom CAs are ignored for
this provider) and allows plain http only to loopback and the ECS/EKS link-local addresses, so
kite serves plain http on 127.0.0.1 here, as the node agent does on 169.254.170.23."""
import json
import os
import pathlib
import subprocess
import sys

import boto3
import botocore.exceptions
import pytest

from issuer import Issuer

TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"}, "Action": ["sts:AssumeRole", "sts:TagSession"]}],
}


@pytest.fixture
def cluster(tmp_path, kite_factory, monkeypatch):
    issuer = Issuer()
    kite = kite_factory("--insecure-http", "--allow-http-issuer", "--eks-cluster", "prod", "--cluster-issuer", issuer.url, "--agent-listen", "127.0.0.1:0")
    (tmp_path / "trust.json").write_text(json.dumps(TRUST))
    role = kite.cli("iam", "role", "create", "--role-name", "pod-role", "--trust-policy", f"file://{tmp_path / 'trust.json'}")["Role"]
    token_file = tmp_path / "eks-pod-identity-token"
    # The pod's environment as the EKS Pod Identity webhook sets it, and nothing else to fall back on.
    for var in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"]:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", kite.agent_url + "/v1/credentials")
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", kite.url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    yield kite, issuer, role, token_file
    issuer.close()


def project(issuer, token_file, namespace, service_account):
    """What the kubelet writes into the pod: a token bound to the pod, for pods.eks.amazonaws.com."""
    claims = {"kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": service_account, "uid": "sa-uid"},
                                "pod": {"name": f"{service_account}-5c7d", "uid": "pod-uid"}}}
    token_file.write_text(issuer.token(f"system:serviceaccount:{namespace}:{service_account}", aud="pods.eks.amazonaws.com", **claims))


def associate(kite, service_account, role):
    return kite.cli("eks", "pod-identity-association", "create", "--cluster-name", "prod", "--namespace", "default",
                    "--service-account", service_account, "--role-arn", role["Arn"])["association"]


def assumed_role_prefix(role):
    return role["Arn"].replace(":iam::", ":sts::").replace(":role/", ":assumed-role/") + "/eks-prod-"


def test_boto3_and_awscli_get_the_pods_role_from_the_container_credentials_endpoint(cluster):
    kite, issuer, role, token_file = cluster
    associate(kite, "app", role)
    project(issuer, token_file, "default", "app")

    session = boto3.Session()
    assert session.get_credentials().method == "container-role"
    me = session.client("sts").get_caller_identity()
    assert me["Arn"].startswith(assumed_role_prefix(role) + "app-5c7d-"), me
    assert me["Account"] == role["Arn"].split(":")[4]

    aws = pathlib.Path(sys.executable).with_name("aws")
    out = subprocess.run([str(aws), "sts", "get-caller-identity", "--output", "json"], capture_output=True, text=True, env=os.environ.copy())
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["Arn"].startswith(assumed_role_prefix(role)), out.stdout


def test_a_service_account_without_an_association_is_refused_by_name_and_deleting_one_takes_effect(cluster):
    kite, issuer, role, token_file = cluster
    association = associate(kite, "app", role)
    project(issuer, token_file, "default", "other")
    with pytest.raises(botocore.exceptions.CredentialRetrievalError) as refused:
        boto3.Session().client("sts").get_caller_identity()
    message = str(refused.value)
    assert "no pod identity association for service account default/other" in message and "cluster prod" in message, message

    project(issuer, token_file, "default", "app")
    assert boto3.Session().client("sts").get_caller_identity()["Arn"].startswith(assumed_role_prefix(role))
    kite.cli("eks", "pod-identity-association", "delete", "--cluster-name", "prod", "--association-id", association["associationId"])
    with pytest.raises(botocore.exceptions.CredentialRetrievalError) as refused:
        boto3.Session().client("sts").get_caller_identity()
    assert "service account default/app" in str(refused.value)


def test_a_token_for_another_audience_is_refused_with_the_reason(cluster):
    kite, issuer, role, token_file = cluster
    associate(kite, "app", role)
    token_file.write_text(issuer.token("system:serviceaccount:default:app", aud="sts.amazonaws.com"))
    with pytest.raises(botocore.exceptions.CredentialRetrievalError) as refused:
        boto3.Session().client("sts").get_caller_identity()
    assert "InvalidTokenException" in str(refused.value) and "pods.eks.amazonaws.com" in str(refused.value)
