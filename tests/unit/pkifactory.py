"""Builds CAs, leaves, chains and CRLs with any flaw a test needs, straight with cryptography."""

import datetime
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime.datetime.now(datetime.timezone.utc)
DAY = datetime.timedelta(days=1)


def key(kind="ec", bits=2048):
    return ec.generate_private_key(ec.SECP256R1()) if kind == "ec" else rsa.generate_private_key(65537, bits)


class Cert:
    def __init__(self, cert, key):
        self.cert = cert
        self.key = key

    @property
    def pem(self):
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def der(self):
        return self.cert.public_bytes(serialization.Encoding.DER)

    def key_pem(self, passphrase=None):
        enc = serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def issue(cn, issuer=None, ca=False, eku=("server",), sans=("DNS:svc",), not_before=None, not_after=None,
          key_obj=None, basic_constraints=True):
    k = key_obj or key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    signer_name = issuer.cert.subject if issuer else subject
    signer_key = issuer.key if issuer else k
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(signer_name).public_key(k.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(not_before or NOW - DAY).not_valid_after(not_after or NOW + 90 * DAY))
    if basic_constraints:
        b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    if not ca and eku:
        oids = {"server": ExtendedKeyUsageOID.SERVER_AUTH, "client": ExtendedKeyUsageOID.CLIENT_AUTH,
                "code": ExtendedKeyUsageOID.CODE_SIGNING}
        b = b.add_extension(x509.ExtendedKeyUsage([oids[e] for e in eku]), critical=False)
    if not ca and sans:
        names = [x509.DNSName(s[4:]) if s.startswith("DNS:") else x509.UniformResourceIdentifier(s[4:]) for s in sans]
        b = b.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return Cert(b.sign(signer_key, hashes.SHA256()), k)


def crl(ca, revoked=(), next_update=None):
    b = (x509.CertificateRevocationListBuilder().issuer_name(ca.cert.subject)
         .last_update(NOW - DAY).next_update(next_update or NOW + 7 * DAY))
    for c in revoked:
        b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(c.cert.serial_number)
                                      .revocation_date(NOW - DAY).build())
    return b.sign(ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def write(directory, name, data, mode=0o600):
    path = os.path.join(str(directory), name)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    return path
