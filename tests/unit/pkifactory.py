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
          key_obj=None, basic_constraints=True, serial=None):
    k = key_obj or key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    signer_name = issuer.cert.subject if issuer else subject
    signer_key = issuer.key if issuer else k
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(signer_name).public_key(k.public_key())
         .serial_number(serial or x509.random_serial_number())
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


def _der_items(data):
    """The DER TLVs one after another in ``data`` (short or long definite lengths)."""
    items, i = [], 0
    while i < len(data):
        start, size = i, data[i + 1]
        i += 2
        if size & 0x80:
            count = size & 0x7F
            size = int.from_bytes(data[i:i + count], "big")
            i += count
        items.append(data[start:i + size])
        i += size
    return items


def _der_content(tlv):
    size = tlv[1]
    return tlv[2 + (size & 0x7F if size & 0x80 else 0):]


def _der(tag, body):
    if len(body) < 0x80:
        return bytes([tag, len(body)]) + body
    length = len(body).to_bytes((len(body).bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + body


def crl_without_next_update(ca, number=1):
    """A CRL signed by ``ca`` (an EC CA) without the optional nextUpdate field.

    cryptography's builder insists on nextUpdate, so the TBSCertList of a built CRL is
    re-encoded without it and signed again."""
    built = (x509.CertificateRevocationListBuilder().issuer_name(ca.cert.subject)
             .last_update(NOW - DAY).next_update(NOW + 7 * DAY)
             .add_extension(x509.CRLNumber(number), critical=False)
             .sign(ca.key, hashes.SHA256()))
    tbs, algorithm = _der_items(_der_content(built.public_bytes(serialization.Encoding.DER)))[:2]
    # version, signature, issuer, thisUpdate, nextUpdate, crlExtensions
    fields = _der_items(_der_content(tbs))
    assert [f[0] for f in fields[3:5]] == [0x17, 0x17], "expected thisUpdate and nextUpdate as UTCTime"
    tbs = _der(0x30, b"".join(fields[:4] + fields[5:]))
    signature = ca.key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    der = _der(0x30, tbs + algorithm + _der(0x03, b"\x00" + signature))
    return x509.load_der_x509_crl(der).public_bytes(serialization.Encoding.PEM)
