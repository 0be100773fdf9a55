"""A minimal external OIDC issuer (what a Kubernetes cluster's service-account issuer serves),
for federated-credential tests: discovery document and JWKS over loopback HTTP, and RS256 tokens."""
import datetime
import ipaddress
import json
import ssl
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from jwt.algorithms import RSAAlgorithm


def certificates(tmp_dir):
    """A CA (the file kite is told to trust) and a 127.0.0.1 server certificate it signed, as a
    private cluster issuer would have."""
    now = datetime.datetime.now(datetime.timezone.utc)
    def build(subject, issuer_name, public_key, signer, ca):
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name).public_key(public_key)
             .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
             .not_valid_after(now + datetime.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            b = b.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        return b.sign(signer, hashes.SHA256())
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test issuer CA")])
    ca = build(ca_name, ca_name, ca_key.public_key(), ca_key, True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf = build(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test issuer")]), ca_name, key.public_key(), ca_key, False)
    ca_file, cert_file, key_file = tmp_dir / "issuer-ca.pem", tmp_dir / "issuer-cert.pem", tmp_dir / "issuer-key.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return ca_file, cert_file, key_file


class Issuer:
    """`tls_dir` given: served over https with a certificate from its own CA (`self.ca_file`), as a real
    cluster issuer is; otherwise plain http on loopback."""

    def __init__(self, tls_dir=None):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = uuid.uuid4().hex
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": issuer.url + "/openid/v1/jwks", "id_token_signing_alg_values_supported": ["RS256"]}
                elif self.path == "/openid/v1/jwks":
                    jwk = json.loads(RSAAlgorithm.to_jwk(issuer.key.public_key()))
                    jwk.update({"kid": issuer.kid, "use": "sig", "alg": "RS256"})
                    body = {"keys": [jwk]}
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        self.ca_file = None
        if tls_dir is not None:
            self.ca_file, cert_file, key_file = certificates(tls_dir)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert_file, key_file)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self, sub, aud="api://AzureADTokenExchange", lifetime=3600, iss=None, **extra):
        now = int(time.time())
        claims = {"iss": iss or self.url, "sub": sub, "aud": aud, "iat": now, "nbf": now, "exp": now + lifetime, **extra}
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})

    def close(self):
        self.server.shutdown()
