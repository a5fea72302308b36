"""A test PKI: a CA, a server certificate (CN/SAN localhost) and a sender's, all signed by the
CA, written as PEM files; and a client's TLS context that trusts the CA (with the sender's
certificate for mutual TLS). Used by the DICOM node's and the HL7 listener's TLS tests."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path
from types import SimpleNamespace


def _key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _cert(subject: str, key, issuer_name: str, issuer_key, ca: bool, days: float = 30):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def write_pki(folder: Path, days: float = 30) -> SimpleNamespace:
    """A CA, the node's certificate (CN/SAN localhost) and a sender's, all signed by the CA."""
    from cryptography.hazmat.primitives import serialization

    def pem(obj) -> bytes:
        if hasattr(obj, "private_bytes"):
            return obj.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        return obj.public_bytes(serialization.Encoding.PEM)

    folder.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    ca = _cert("test CA", ca_key, "test CA", ca_key, ca=True, days=days)
    out = SimpleNamespace(ca=folder / "ca.crt")
    out.ca.write_bytes(pem(ca))
    for name in ("node", "sender"):
        key = _key()
        cert = _cert("localhost" if name == "node" else "CR01", key, "test CA", ca_key, False, days)
        setattr(out, f"{name}_cert", folder / f"{name}.crt")
        setattr(out, f"{name}_key", folder / f"{name}.key")
        (folder / f"{name}.crt").write_bytes(pem(cert) + pem(ca))
        (folder / f"{name}.key").write_bytes(pem(key))
    return out


def client_context(pki, with_cert: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki.ca))
    if with_cert:
        ctx.load_cert_chain(str(pki.sender_cert), str(pki.sender_key))
    return ctx
