"""Certificates and keys for the local control plane and its node.

One throwaway CA signs the serving certificates (kube-apiserver, kubelet) and the client
certificates (admin, kube-controller-manager, kube-scheduler, the kubelet's node identity,
the apiserver's kubelet client); a separate key pair signs service-account tokens. ECDSA
P-256 keys: generation is instant (RSA would add seconds to every start) and every
component accepts them (tokens are signed ES256).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# The user the apiserver is to kubelets (authorized by the kubelet's webhook via RBAC).
APISERVER_KUBELET_CLIENT = "kube-apiserver-kubelet-client"
# Short-lived: a dev cluster lives for one test session or one demo.
_VALIDITY = dt.timedelta(days=30)
_APISERVER_DNS_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


@dataclass(frozen=True)
class Pki:
    """Paths of the generated PEM files (all under one directory)."""

    directory: Path
    ca_cert: Path
    ca_key: Path
    apiserver_cert: Path
    apiserver_key: Path
    admin_cert: Path
    admin_key: Path
    controller_manager_cert: Path
    controller_manager_key: Path
    scheduler_cert: Path
    scheduler_key: Path
    # The kubelet's identity (system:node:<name> in system:nodes: the Node authorizer
    # scopes it to its own Node and pods), its serving certificate (the apiserver verifies
    # it), and the client certificate the apiserver presents to the kubelet (logs, exec).
    kubelet_client_cert: Path
    kubelet_client_key: Path
    kubelet_serving_cert: Path
    kubelet_serving_key: Path
    apiserver_kubelet_client_cert: Path
    apiserver_kubelet_client_key: Path
    service_account_key: Path
    service_account_pub: Path


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        # Kubernetes maps O= to the user's groups.
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # Back-dated a little so small clock differences never make it "not yet valid".
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
    )


def _leaf(
    common_name: str,
    organization: str | None,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    *,
    server_names: tuple[str, ...] = (),
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A client certificate, or a serving one for ``server_names`` (plus 127.0.0.1)."""
    key = _new_key()
    server = bool(server_names)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        _builder(_name(common_name, organization), ca_cert.subject, key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=False,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if server:
        names: list[x509.GeneralName] = [x509.DNSName(n) for n in server_names]
        names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def generate_pki(directory: Path, node_name: str = "localhost") -> Pki:
    """Write a fresh CA, serving/client certificates and service-account keys.

    ``node_name`` is the kubelet's Node name; the apiserver reaches it as ``localhost``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki(
        directory=directory,
        ca_cert=directory / "ca.crt",
        ca_key=directory / "ca.key",
        apiserver_cert=directory / "apiserver.crt",
        apiserver_key=directory / "apiserver.key",
        admin_cert=directory / "admin.crt",
        admin_key=directory / "admin.key",
        controller_manager_cert=directory / "controller-manager.crt",
        controller_manager_key=directory / "controller-manager.key",
        scheduler_cert=directory / "scheduler.crt",
        scheduler_key=directory / "scheduler.key",
        kubelet_client_cert=directory / "kubelet-client.crt",
        kubelet_client_key=directory / "kubelet-client.key",
        kubelet_serving_cert=directory / "kubelet-serving.crt",
        kubelet_serving_key=directory / "kubelet-serving.key",
        apiserver_kubelet_client_cert=directory / "apiserver-kubelet-client.crt",
        apiserver_kubelet_client_key=directory / "apiserver-kubelet-client.key",
        service_account_key=directory / "sa.key",
        service_account_pub=directory / "sa.pub",
    )

    ca_key = _new_key()
    ca_name = _name("inference-thresholds-dev-ca")
    ca_cert = (
        _builder(ca_name, ca_name, ca_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=False,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_cert(pki.ca_cert, ca_cert)
    _write_key(pki.ca_key, ca_key)

    leaves: tuple[tuple[Path, Path, str, str | None, tuple[str, ...]], ...] = (
        (pki.apiserver_cert, pki.apiserver_key, "kube-apiserver", None, _APISERVER_DNS_NAMES),
        # system:masters is bound to cluster-admin by the RBAC bootstrap policy.
        (pki.admin_cert, pki.admin_key, "inference-thresholds-admin", "system:masters", ()),
        # The bootstrap policy grants these users exactly what their component needs.
        (
            pki.controller_manager_cert,
            pki.controller_manager_key,
            "system:kube-controller-manager",
            None,
            (),
        ),
        (pki.scheduler_cert, pki.scheduler_key, "system:kube-scheduler", None, ()),
        (
            pki.kubelet_client_cert,
            pki.kubelet_client_key,
            f"system:node:{node_name}",
            "system:nodes",
            (),
        ),
        (
            pki.kubelet_serving_cert,
            pki.kubelet_serving_key,
            f"system:node:{node_name}",
            "system:nodes",
            ("localhost",),
        ),
        # Bound to system:kubelet-api-admin once the API is up (LocalCluster does it).
        (
            pki.apiserver_kubelet_client_cert,
            pki.apiserver_kubelet_client_key,
            APISERVER_KUBELET_CLIENT,
            None,
            (),
        ),
    )
    for cert_path, key_path, cn, org, server_names in leaves:
        cert, key = _leaf(cn, org, ca_cert, ca_key, server_names=server_names)
        _write_cert(cert_path, cert)
        _write_key(key_path, key)

    sa_key = _new_key()
    _write_key(pki.service_account_key, sa_key)
    pki.service_account_pub.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return pki
