# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Key, certificate and name helpers shared by the mtls.nginx modules.

The one place that imports ``cryptography``: modules call :func:`require_cryptography`
so a missing library fails through ``missing_required_lib`` instead of a traceback.
"""

import base64
import datetime
import ipaddress
import re
import traceback
import warnings

from ._values import check as value_problem

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
    from cryptography.x509.oid import NameOID

    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None
except ImportError:
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()

KEY_TYPES = ("ecdsa-p256", "ecdsa-p384", "rsa2048", "rsa3072", "rsa4096", "ed25519")


class Purpose:
    """What a certificate of one purpose carries: its key usages (an RSA leaf adds
    keyEncipherment) and its extended key usage, by OpenSSL's name and by OID; a CA has none."""

    def __init__(self, key_usage, eku_name=None, eku_oid=None):
        self.key_usage = key_usage
        self.eku_name = eku_name
        self.eku_oid = eku_oid


# The one place that says what each purpose means; leaves are the purposes with an EKU.
PURPOSES = {
    "server": Purpose(("digital_signature",), "serverAuth", "1.3.6.1.5.5.7.3.1"),
    "client": Purpose(("digital_signature",), "clientAuth", "1.3.6.1.5.5.7.3.2"),
    "ca": Purpose(("digital_signature", "key_cert_sign", "crl_sign")),
}
LEAF_PURPOSES = tuple(name for name, purpose in PURPOSES.items() if purpose.eku_oid)


class PKIError(Exception):
    """A problem the user can fix; the message names the file or option."""


def require_cryptography(module):
    if not HAS_CRYPTOGRAPHY:
        from ansible.module_utils.basic import missing_required_lib

        module.fail_json(msg=missing_required_lib("cryptography"), exception=CRYPTOGRAPHY_IMPORT_ERROR)


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def _aware(value):
    """Naive datetimes from cryptography before 42 are UTC."""
    return value.replace(tzinfo=datetime.timezone.utc) if value is not None and value.tzinfo is None else value


# --- keys -------------------------------------------------------------------------------------

def generate_private_key(key_type):
    if key_type == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ecdsa-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[3:]))
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise PKIError("unknown key type %r; choose one of %s" % (key_type, ", ".join(KEY_TYPES)))


def key_type_of(key):
    """Name a public or private key the way the ``key_type`` option does."""
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return {"secp256r1": "ecdsa-p256", "secp384r1": "ecdsa-p384"}.get(key.curve.name, "ecdsa-" + key.curve.name)
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return "rsa%d" % key.key_size
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return "ed25519"
    return type(key).__name__


def signature_hash(key):
    # Ed25519 signs without a separate digest.
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def private_key_pem(key, passphrase=None):
    """PKCS#8 PEM, encrypted with ``passphrase`` when one is given (nginx reads it with ssl_password_file)."""
    if passphrase:
        encryption = serialization.BestAvailableEncryption(to_passphrase(passphrase))
    else:
        encryption = serialization.NoEncryption()
    return key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=encryption,
    )


def to_passphrase(value):
    if value is None or isinstance(value, bytes):
        return value
    return value.encode("utf-8")


def load_private_key(data, path, passphrase=None):
    try:
        return serialization.load_pem_private_key(data, password=to_passphrase(passphrase))
    except TypeError as exc:
        # cryptography raises TypeError both for a missing and for a superfluous passphrase.
        if passphrase:
            raise PKIError("%s: a passphrase was given but the private key is not encrypted (%s)" % (path, exc))
        raise PKIError("%s: the private key is encrypted and no passphrase was given (%s)" % (path, exc))
    except ValueError as exc:
        raise PKIError("%s: not a readable PEM private key (%s)" % (path, exc))


def public_key_bytes(key):
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def same_public_key(a, b):
    return public_key_bytes(a) == public_key_bytes(b)


# --- PEM files ----------------------------------------------------------------------------------

_PEM_MARKER = re.compile(rb"-----(BEGIN|END) ([^\r\n]*?)-----")
_BASE64 = re.compile(rb"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")


class PemBlock:
    """One ``-----BEGIN x-----`` ... ``-----END x-----`` block of a PEM file, numbered from 1 in
    file order: ``der`` holds its decoded body, or ``problem`` says why OpenSSL refuses it."""

    def __init__(self, number, label):
        self.number = number
        self.label = label
        self.der = None
        self.problem = None

    def __str__(self):
        return "PEM block %d (%s) %s" % (self.number, self.label, self.problem)


def pem_blocks(data):
    """Every PEM block of ``data`` as OpenSSL's PEM reader meets them: CRLF and text between
    blocks are fine, while a block cut short, closed by another label's END, with a corrupt
    body or with its BEGIN/END not alone on its line carries a ``problem``. nginx refuses the
    whole file for any such block, so callers must too."""
    blocks, current, body = [], None, []
    for line in data.splitlines():
        marker = _PEM_MARKER.search(line)
        if marker is None:
            if current is not None:
                body.append(line)
            continue
        kind, label = marker.group(1), marker.group(2).decode("ascii", "replace")
        cut = current is not None and kind == b"BEGIN"
        if cut:
            truncated = "is truncated: BEGIN without END (block %d begins inside it)" % (len(blocks) + 1)
            current.problem, current = current.problem or truncated, None
        if kind == b"BEGIN":
            current, body = PemBlock(len(blocks) + 1, label), []
            blocks.append(current)
        elif current is None:
            block = PemBlock(len(blocks) + 1, label)
            block.problem = "is missing its BEGIN line: END without BEGIN"
            blocks.append(block)
        else:
            if label != current.label:
                mismatch = "ends with END %s: END does not match BEGIN %s" % (label, current.label)
                current.problem = current.problem or mismatch
            else:
                _decode_body(current, body)
            current = None
        # OpenSSL sees a BEGIN or END line only when it starts the line and nothing but blanks follow.
        if line.rstrip() != marker.group(0) and not blocks[-1].problem and not cut:
            blocks[-1].problem = "has text around its %s line, where OpenSSL does not see it" % kind.decode()
    if current is not None:
        current.problem = current.problem or "is truncated: BEGIN without END"
    return blocks


def _decode_body(block, lines):
    if lines and b":" in lines[0]:
        # RFC 1421 headers (Proc-Type, DEK-Info of a legacy encrypted key) end at a blank line.
        end = next((i for i, line in enumerate(lines) if not line.strip()), len(lines))
        lines = lines[end + 1:]
    text = b"".join(b"".join(line.split()) for line in lines)
    if not text:
        block.problem = "has an empty body"
    elif not _BASE64.match(text):
        block.problem = "has a corrupt base64 body"
    else:
        block.der = base64.b64decode(text)


def _parse_blocks(data, path, label, loader, what):
    """The objects in every ``label`` block of a PEM file; PKIError naming the file and each broken block."""
    blocks = pem_blocks(data)
    broken = [str(b) for b in blocks if b.problem]
    if broken:
        raise PKIError("%s: %s" % (path, "; ".join(broken)))
    found = []
    for block in blocks:
        if block.label != label:
            continue
        try:
            found.append(loader(block.der))
        except ValueError as exc:
            raise PKIError("%s: PEM block %d (%s) is not a readable %s (%s)" % (path, block.number, label, what, exc))
    if not found:
        raise PKIError("%s: not a readable PEM %s (no -----BEGIN %s----- block)" % (path, what, label))
    return found


# Public CA bundles (Mozilla's) hold certificates with a serial that is not positive; cryptography
# warns on stderr when it parses one, which Ansible reports as a module writing to stderr. Reading
# a bundle is what the collection does with them; nothing is signed with their serials.
warnings.filterwarnings("ignore", message="Parsed a serial number which wasn't positive")


# --- certificates -----------------------------------------------------------------------------

def load_certificate(data, path):
    """The first certificate of a PEM file whose every block reads."""
    return load_certificates(data, path)[0]


def load_certificates(data, path):
    """Every certificate of a PEM bundle, in file order (the first is the leaf or the signer)."""
    return _parse_blocks(data, path, "CERTIFICATE", x509.load_der_x509_certificate, "certificate")


def is_self_signed(cert):
    return issued_by(cert, cert)


def certificate_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def fingerprint_sha256(cert):
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


# cryptography 42 added the *_utc attributes; Debian 12 ships 38, whose datetimes are naive UTC.
def not_before(cert):
    value = getattr(cert, "not_valid_before_utc", None)
    return value if value is not None else _aware(cert.not_valid_before)


def not_after(cert):
    value = getattr(cert, "not_valid_after_utc", None)
    return value if value is not None else _aware(cert.not_valid_after)


def days_remaining(cert, now=None):
    return (not_after(cert) - (now or utcnow())).days


def check_common_name(common_name):
    """Refuse a common name with control characters or nginx syntax (``;{}"\\``), which
    would reach configs and logs through the DNs that show it."""
    problem = value_problem("common_name", "common_name", common_name)
    if problem:
        raise PKIError(problem)


def name_from_cn(common_name):
    check_common_name(common_name)
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def common_name_of(cert):
    values = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return values[0].value if values else None


def parse_san(entry):
    """Turn ``DNS:x``, ``IP:x``, ``URI:x`` (or a bare name or address) into a GeneralName.

    Each is checked first (a host name, ``*.`` allowed as the first label; an address; an
    absolute URI): a name such as ``a; {`` would otherwise be signed, then written into configs."""
    problem = value_problem("subject_alt_names", "san", entry)
    if problem:
        raise PKIError(problem)
    kind, sep, value = entry.partition(":")
    if not sep or kind.upper() not in ("DNS", "IP", "URI"):
        kind, value = ("IP", entry) if _is_ip(entry) else ("DNS", entry)
    kind = kind.upper()
    if kind == "DNS":
        return x509.DNSName(value)
    if kind == "IP":
        return x509.IPAddress(ipaddress.ip_address(value))
    return x509.UniformResourceIdentifier(value)


def _is_ip(value):
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return False


def san_strings(names):
    """Canonical text for a list of GeneralNames: ``DNS:x``, ``IP:x``, ``URI:x``."""
    out = []
    for name in names:
        if isinstance(name, x509.DNSName):
            out.append("DNS:" + name.value)
        elif isinstance(name, x509.IPAddress):
            out.append("IP:" + str(name.value))
        elif isinstance(name, x509.UniformResourceIdentifier):
            out.append("URI:" + name.value)
        else:
            out.append(str(name))
    return out


def extension_value(signed, kind):
    """The value of the ``kind`` extension (a class such as x509.BasicConstraints) of a
    certificate, CSR or CRL; None when it has none."""
    try:
        return signed.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def sans_of(signed):
    """The subject alternative names of a certificate or CSR, as :func:`san_strings` writes them."""
    names = extension_value(signed, x509.SubjectAlternativeName)
    return san_strings(names) if names is not None else []


def purposes_of(signed):
    """The mTLS purposes (``server``, ``client``) the EKU of a certificate or CSR allows."""
    eku = extension_value(signed, x509.ExtendedKeyUsage)
    return [name for name in LEAF_PURPOSES if _eku_oid(name) in eku] if eku is not None else []


# A CSR carries its extensions as a certificate does.
sans_of_csr = sans_of


def _eku_oid(purpose):
    return x509.ObjectIdentifier(PURPOSES[purpose].eku_oid)


def _key_usage(purpose, key_encipherment=False):
    """The KeyUsage extension of ``purpose``: the usages PURPOSES names, every other one off."""
    usages = dict((name, False) for name in (
        "digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
        "key_cert_sign", "crl_sign", "encipher_only", "decipher_only"))
    usages.update((name, True) for name in PURPOSES[purpose].key_usage)
    usages["key_encipherment"] = usages["key_encipherment"] or key_encipherment
    return x509.KeyUsage(**usages)


def is_ca(cert):
    constraints = extension_value(cert, x509.BasicConstraints)
    return constraints.ca if constraints is not None else False


def path_length_of(cert):
    """The CA path length limit of a certificate; None when unlimited or not a CA."""
    constraints = extension_value(cert, x509.BasicConstraints)
    return constraints.path_length if constraints is not None else None


def issued_by(cert, issuer_cert):
    """True when ``issuer_cert`` names and signed ``cert``."""
    return cert.issuer == issuer_cert.subject and signed_by(cert, issuer_cert.public_key())


def signed_by(cert, public_key):
    """True when the key pair of ``public_key`` signed ``cert``."""
    try:
        verify_signature(public_key, cert.signature, cert.tbs_certificate_bytes, cert.signature_hash_algorithm)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def verify_signature(public_key, signature, data, hash_algorithm):
    """Raise InvalidSignature unless ``public_key`` made ``signature`` over ``data``.

    Certificate.verify_directly_issued_by does this from cryptography 40 on; Debian 12 has 38."""
    if isinstance(public_key, rsa.RSAPublicKey):
        public_key.verify(signature, data, padding.PKCS1v15(), hash_algorithm)
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        public_key.verify(signature, data, ec.ECDSA(hash_algorithm))
    elif isinstance(public_key, ed25519.Ed25519PublicKey):
        public_key.verify(signature, data)
    else:
        raise TypeError("unsupported issuer key type %s" % type(public_key).__name__)


def describe(cert):
    """What the modules return about a certificate (never key material)."""
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "serial": format(cert.serial_number, "X"),
        "fingerprint_sha256": fingerprint_sha256(cert),
        "not_before": not_before(cert).isoformat(),
        "not_after": not_after(cert).isoformat(),
        "days_remaining": days_remaining(cert),
        "subject_alt_names": sans_of(cert),
    }


def build_certificate(subject, issuer_name, public_key, signing_key, valid_days, extensions, backdate_minutes=5):
    """Sign a certificate; ``extensions`` is a list of (extension, critical)."""
    now = utcnow()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        # A little slack for hosts whose clocks run behind the controller's.
        .not_valid_before(now - datetime.timedelta(minutes=backdate_minutes))
        .not_valid_after(now + datetime.timedelta(days=valid_days))
    )
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical=critical)
    return sign_builder(builder, signing_key)


def ca_extensions(public_key, path_length, issuer_cert=None, key_id=None):
    """Extensions of a CA certificate: a root when ``issuer_cert`` is None. ``key_id`` keeps the
    subject key identifier of the certificate it replaces, which the leaves it issued name."""
    ski = x509.SubjectKeyIdentifier(key_id or key_identifier(public_key))
    return [
        (x509.BasicConstraints(ca=True, path_length=path_length), True),
        (_key_usage("ca"), True),
        (ski, False),
        (authority_key_identifier(issuer_cert) if issuer_cert is not None
         else x509.AuthorityKeyIdentifier(ski.digest, None, None), False),
    ]


def leaf_extensions(public_key, issuer_cert, purpose, sans):
    # ECDSA and Ed25519 keys sign the handshake; RSA keys may also be used for key transport.
    exts = [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (_key_usage(purpose, key_encipherment=isinstance(public_key, rsa.RSAPublicKey)), True),
        (x509.ExtendedKeyUsage([_eku_oid(purpose)]), False),
        (x509.SubjectKeyIdentifier(key_identifier(public_key)), False),
        (authority_key_identifier(issuer_cert), False),
    ]
    if sans:
        exts.append((x509.SubjectAlternativeName(sans), False))
    return exts


# --- key identifiers ----------------------------------------------------------------------------
# cryptography's SubjectKeyIdentifier.from_public_key and AuthorityKeyIdentifier.from_issuer_public_key
# hash with SHA-1 (RFC 5280, 4.2.1.2, method 1), which FIPS-minded hosts may refuse; new
# identifiers use SHA-256 instead (RFC 7093, section 2, method 1). Certificates made before keep
# their SHA-1 identifiers: an authority key identifier is copied from its issuer's certificate,
# never computed again, so it always equals the subject key identifier the issuer carries.

def key_identifier(public_key):
    """The leftmost 160 bits of the SHA-256 of the subjectPublicKey BIT STRING (RFC 7093, method 1)."""
    digest = hashes.Hash(hashes.SHA256())
    digest.update(subject_public_key_bits(public_key))
    return digest.finalize()[:20]


def subject_public_key_bits(public_key):
    """The value of the subjectPublicKey BIT STRING of a key's SubjectPublicKeyInfo, which is the
    key's own encoding: the uncompressed point of an EC key (RFC 5480), the PKCS#1 RSAPublicKey
    of an RSA key (RFC 3279), the raw key of an Ed25519 key (RFC 8410)."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    if isinstance(public_key, rsa.RSAPublicKey):
        return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_identifier_of(cert):
    """The subject key identifier a certificate carries, or None without the extension."""
    key_id = extension_value(cert, x509.SubjectKeyIdentifier)
    return key_id.digest if key_id is not None else None


def authority_key_identifier(issuer_cert):
    """The AuthorityKeyIdentifier of what ``issuer_cert`` signs: the issuer's own subject key
    identifier, whichever way it was made; computed (RFC 7093) only when it carries none."""
    key_id = key_identifier_of(issuer_cert)
    return x509.AuthorityKeyIdentifier(key_id or key_identifier(issuer_cert.public_key()), None, None)


# --- certificate signing requests ---------------------------------------------------------------

def build_csr(key, subject, purpose, sans):
    """A CSR that shows what the host asks for; the CA decides what it signs."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    builder = builder.add_extension(x509.ExtendedKeyUsage([_eku_oid(purpose)]), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, signature_hash(key))


def load_csr(data, name):
    try:
        csr = x509.load_pem_x509_csr(data)
    except ValueError as exc:
        raise PKIError("%s: not a readable PEM certificate signing request (%s)" % (name, exc))
    if not csr.is_signature_valid:
        raise PKIError("%s: the request's signature does not match its public key" % name)
    _check_requested_names(csr, name)
    return csr


def _check_requested_names(csr, name):
    # sign never copies a request's names, but one that asks for nginx syntax is refused, not signed.
    for entry in sans_of(csr):
        if entry.partition(":")[0] in ("DNS", "IP", "URI"):
            problem = value_problem("%s: the request's subject_alt_names" % name, "san", entry)
            if problem:
                raise PKIError(problem)


def csr_pem(csr):
    return csr.public_bytes(serialization.Encoding.PEM)


# --- certificate revocation lists -------------------------------------------------------------

def load_crl(data, path):
    """The first CRL of a PEM file whose every block reads."""
    return _parse_blocks(data, path, "X509 CRL", x509.load_der_x509_crl, "CRL")[0]


def crl_pem(crl):
    return crl.public_bytes(serialization.Encoding.PEM)


def crl_next_update(crl):
    if hasattr(crl, "next_update_utc"):
        return crl.next_update_utc
    return _aware(crl.next_update)


def crl_last_update(crl):
    if hasattr(crl, "last_update_utc"):
        return crl.last_update_utc
    return _aware(crl.last_update)


def crl_number_of(crl):
    number = extension_value(crl, x509.CRLNumber)
    return number.crl_number if number is not None else 0


def revoked_of(crl):
    """{serial: revocation date} of a CRL."""
    out = {}
    for entry in crl:
        if hasattr(entry, "revocation_date_utc"):
            out[entry.serial_number] = entry.revocation_date_utc
        else:
            out[entry.serial_number] = _aware(entry.revocation_date)
    return out


def build_crl(ca_cert, ca_key, revoked, number, valid_days, backdate_minutes=5):
    """Sign a CRL; ``revoked`` maps serial numbers to revocation dates."""
    now = utcnow()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - datetime.timedelta(minutes=backdate_minutes))
        .next_update(now + datetime.timedelta(days=valid_days))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(authority_key_identifier(ca_cert), critical=False)
    )
    for serial in sorted(revoked):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(revoked[serial]).build())
    return sign_builder(builder, ca_key)


def crl_signed_by(crl, ca_cert):
    return crl.issuer == ca_cert.subject and crl.is_signature_valid(ca_cert.public_key())


# --- signing with a key that signs elsewhere (a PKCS#11 token) ----------------------------------
# A key that is not cryptography's own (_pkcs11.TokenSigningKey) has public_key() and
# sign_tbs(data, hash_algorithm), which returns the signature as X.509 carries it. cryptography
# signs only with its own keys, so the certificate or CRL is first built and signed with a
# stand-in key of the same type (which gives the TBS bytes, signature algorithm included), then
# put together again around the signature the other key made over those bytes.

def sign_builder(builder, signing_key):
    """The certificate (a CertificateBuilder) or CRL (a CertificateRevocationListBuilder) of
    ``builder``, signed by ``signing_key``: one of cryptography's private keys, or a key with
    ``sign_tbs`` (a PKCS#11 token's), whose result is checked against its public key."""
    if not hasattr(signing_key, "sign_tbs"):
        return builder.sign(signing_key, signature_hash(signing_key))
    public_key = signing_key.public_key()
    draft = builder.sign(_stand_in_key(public_key), hashes.SHA256())
    certificate = isinstance(draft, x509.Certificate)
    tbs = draft.tbs_certificate_bytes if certificate else draft.tbs_certlist_bytes
    # Certificate and CertificateList alike: SEQUENCE { tbs, signatureAlgorithm, signatureValue }.
    parts = der_sequence_items(draft.public_bytes(serialization.Encoding.DER))
    if len(parts) != 3 or parts[0] != tbs:
        raise PKIError("cannot take apart the %s cryptography built" % ("certificate" if certificate else "CRL"))
    signature = signing_key.sign_tbs(tbs, draft.signature_hash_algorithm)
    der = der_encode(0x30, tbs + parts[1] + der_encode(0x03, b"\x00" + signature))
    name = getattr(signing_key, "name", "the signing key")
    try:
        signed = x509.load_der_x509_certificate(der) if certificate else x509.load_der_x509_crl(der)
    except ValueError as exc:
        raise PKIError("%s: the %s put together around its signature does not read: %s"
                       % (name, "certificate" if certificate else "CRL", exc))
    valid = signed_by(signed, public_key) if certificate else signed.is_signature_valid(public_key)
    if not valid:
        raise PKIError("%s: its signature does not verify with its public key" % name)
    return signed


_STAND_INS = {}


def _stand_in_key(public_key):
    """A throwaway private key of the type of ``public_key`` (kept per type: RSA keys are slow to make)."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        kind = ("ec", public_key.curve.name)
    elif isinstance(public_key, rsa.RSAPublicKey):
        kind = ("rsa", public_key.key_size)
    else:
        raise PKIError("a key of type %s cannot sign from a token" % key_type_of(public_key))
    if kind not in _STAND_INS:
        if kind[0] == "ec":
            _STAND_INS[kind] = ec.generate_private_key(type(public_key.curve)())
        else:
            _STAND_INS[kind] = rsa.generate_private_key(public_exponent=65537, key_size=public_key.key_size)
    return _STAND_INS[kind]


def der_encode(tag, content):
    """One DER TLV: ``tag`` (a one-byte tag), the definite length, ``content``."""
    length = len(content)
    if length < 0x80:
        head = bytes([length])
    else:
        size = length.to_bytes((length.bit_length() + 7) // 8, "big")
        head = bytes([0x80 | len(size)]) + size
    return bytes([tag]) + head + content


def der_read(data, offset=0):
    """(tag, start of the content, end of the content) of the DER TLV at ``offset`` of ``data``
    (one-byte tags and definite lengths, as in certificates and CRLs)."""
    if offset + 2 > len(data):
        raise PKIError("DER: truncated at %d" % offset)
    tag, length = data[offset], data[offset + 1]
    start = offset + 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or start + count > len(data):
            raise PKIError("DER: unsupported length at %d" % offset)
        length = int.from_bytes(data[start:start + count], "big")
        start += count
    if start + length > len(data):
        raise PKIError("DER: truncated at %d" % offset)
    return tag, start, start + length


def der_sequence_items(data):
    """The TLVs (whole, as bytes) of the DER SEQUENCE that is ``data``."""
    tag, start, end = der_read(data)
    if tag != 0x30 or end != len(data):
        raise PKIError("DER: not one SEQUENCE")
    items = []
    while start < end:
        _tag, content, stop = der_read(data, start)
        items.append(data[start:stop])
        start = stop
    return items
