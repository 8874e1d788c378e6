# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validate certificate, key, CA and CRL files the way nginx will use them.

:func:`check` never stops at the first problem: it collects every one, each naming its file,
so one run tells the operator everything to fix.
"""

import ipaddress
import os
import stat

from ._crypto import (
    LEAF_PURPOSES,
    PURPOSES,
    PKIError,
    certificate_pem,
    common_name_of,
    crl_next_update,
    describe,
    extension_value,
    is_ca,
    is_self_signed,
    issued_by,
    load_certificates,
    load_private_key,
    not_after,
    not_before,
    pem_blocks,
    purposes_of,
    same_public_key,
    sans_of,
    utcnow,
)

try:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import dsa, rsa
except ImportError:  # reported by require_cryptography()
    pass

MIN_RSA_BITS = 2048


class Problems(list):
    def add(self, path, message):
        self.append("%s: %s" % (path, message))


def _read(path, what, problems):
    """Bytes of a file nginx will read, or None after recording why it cannot."""
    if os.path.isdir(path):
        problems.add(path, "is a directory, not a %s file" % what)
        return None
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        problems.add(path, "no such file (%s expected)" % what)
        return None
    except OSError as exc:
        problems.add(path, "cannot be read: %s" % exc.strerror)
        return None
    if not data.strip():
        problems.add(path, "is empty (%s expected)" % what)
        return None
    return data


def _looks_der(data):
    # A DER certificate or CRL starts with a SEQUENCE tag and carries no PEM armour.
    return data[:1] == b"\x30" and b"-----BEGIN" not in data


def _blocks(path, data, problems, what):
    """The PEM blocks of a ``what`` file (certificate, CA bundle, CRL), or None after recording
    each one nginx would refuse; blocks that do not belong in such a file are recorded too."""
    blocks = pem_blocks(data)
    broken = [b for b in blocks if b.problem]
    if len(blocks) == 1 and broken and blocks[0].label == "CERTIFICATE" and blocks[0].problem.startswith("is truncated"):
        problems.add(path, "the PEM certificate is truncated (PEM block 1: BEGIN without END)")
        return None
    for block in broken:
        problems.add(path, str(block))
    for block in blocks:
        if block.label.endswith("PRIVATE KEY") and what != "certificate":
            problems.add(path, "PEM block %d (%s) is a private key; a %s is installed readable by all"
                         % (block.number, block.label, what))
        elif block.label == "CERTIFICATE" and what == "CRL":
            # nginx loads the ssl_crl file into the same store as ssl_client_certificate.
            problems.add(path, "PEM block %d (CERTIFICATE) does not belong in a CRL file: nginx would trust it as a CA"
                         % block.number)
    return None if broken else blocks


def _certificates(path, data, problems, convert_der=False, what="certificate"):
    """Certificates in ``data`` in file order, accepting what nginx accepts: CRLF line
    endings, text around the PEM blocks, a leaf followed by its chain. Returns (certs, pem)
    where ``pem`` is the PEM text to write back when a DER file was converted. Any PEM block
    nginx would refuse (cut short, wrong END, corrupt body) fails the whole file, and a file
    without certificates is named for what it holds instead."""
    if _looks_der(data):
        try:
            cert = x509.load_der_x509_certificate(data)
        except ValueError:
            problems.add(path, "is binary but not a DER certificate; nginx reads only PEM")
            return [], None
        if convert_der:
            return [cert], certificate_pem(cert)
        problems.add(path, "is a DER certificate; nginx reads only PEM "
                           "(convert it, e.g. with convert_der=true or openssl x509 -inform der)")
        return [], None
    blocks = _blocks(path, data, problems, what)
    if blocks is None:
        return [], None
    kinds = [b.label for b in blocks]
    if "CERTIFICATE" in kinds:
        try:
            return load_certificates(data, path), None
        except PKIError as exc:
            # Every block reads as PEM: a certificate block whose DER is no certificate.
            problems.append(str(exc))
            return [], None
    if any(k.endswith("PRIVATE KEY") for k in kinds) and what == "certificate":
        problems.add(path, "holds a private key where a certificate belongs")
    elif any(k.endswith("CERTIFICATE REQUEST") for k in kinds):
        problems.add(path, "holds a certificate signing request (CSR), not a signed certificate")
    elif "X509 CRL" in kinds:
        problems.add(path, "holds a CRL where a certificate belongs")
    else:
        problems.add(path, "holds no PEM certificate")
    return [], None


def _key_problems(path, passphrase, leaf, problems):
    data = _read(path, "private key", problems)
    if data is None:
        return
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o007:
        problems.add(path, "private key is accessible to others (mode %04o); use 0600" % mode)
    if _looks_der(data):
        problems.add(path, "is a DER private key; nginx reads only PEM")
        return
    if b"PRIVATE KEY-----" not in data:
        if b"CERTIFICATE-----" in data:
            problems.add(path, "holds a certificate where a private key belongs")
        else:
            problems.add(path, "holds no PEM private key")
        return
    try:
        key = load_private_key(data.replace(b"\r\n", b"\n"), path, passphrase)
    except PKIError as exc:
        problems.append(str(exc))
        return
    _weak_key(path, key.public_key(), problems)
    if leaf is not None and not same_public_key(key.public_key(), leaf.public_key()):
        problems.add(path, "private key does not belong to the certificate (%s)" % leaf.subject.rfc4514_string())


def _weak_key(path, public_key, problems):
    if isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size < MIN_RSA_BITS:
        problems.add(path, "RSA key of %d bits is too weak; use at least %d" % (public_key.key_size, MIN_RSA_BITS))
    elif isinstance(public_key, dsa.DSAPublicKey):
        problems.add(path, "DSA keys are not supported by TLS 1.3; use ECDSA or RSA")


def _validity(path, cert, min_days, problems, label):
    now = utcnow()
    if not_before(cert) > now:
        problems.add(path, "%s is not valid yet (from %s)" % (label, not_before(cert).isoformat()))
    if not_after(cert) <= now:
        problems.add(path, "%s expired on %s" % (label, not_after(cert).isoformat()))
    elif min_days and (not_after(cert) - now).days < min_days:
        problems.add(path, "%s expires on %s, fewer than %d days from now"
                     % (label, not_after(cert).isoformat(), min_days))


def name_matches(cert, expected):
    """Whether ``expected`` (DNS name, IP address or URI) is a name of ``cert``, as OpenSSL
    checks it: SANs, with a one-label wildcard; the CN only when there is no DNS SAN."""
    sans = sans_of(cert)
    if "://" in expected:
        return "URI:" + expected in sans
    try:
        return "IP:" + str(ipaddress.ip_address(expected)) in sans
    except ValueError:
        pass
    want = expected.lower().rstrip(".")
    dns = [s[4:].lower() for s in sans if s.startswith("DNS:")]
    if not dns:
        dns = [(common_name_of(cert) or "").lower()]
    for name in dns:
        if name == want:
            return True
        if name.startswith("*.") and "." in want and want.split(".", 1)[1] == name[2:] and want.split(".", 1)[0]:
            return True
    return False


def _build_path(path, certs, bundle, ca_path, problems):
    """Leaf ... root, from the file's chain and the CA bundle; None when it does not build."""
    for i in range(len(certs) - 1):
        if not issued_by(certs[i], certs[i + 1]):
            issuer = next((j for j, c in enumerate(certs) if j != i and issued_by(certs[i], c)), None)
            if issuer is not None:
                problems.add(path, "chain is out of order: certificate %d (%s) is issued by certificate %d, "
                                   "it must come right after it" % (i + 1, certs[i].subject.rfc4514_string(), issuer + 1))
            else:
                problems.add(path, "certificate %d (%s) was not issued by the next certificate in the file (%s)"
                             % (i + 1, certs[i].subject.rfc4514_string(), certs[i + 1].subject.rfc4514_string()))
            return None
    chain = list(certs)
    while not is_self_signed(chain[-1]):
        issuer = next((c for c in bundle if issued_by(chain[-1], c)), None)
        if issuer is None:
            problems.add(path, "%s was not signed by any CA in %s" % (chain[-1].subject.rfc4514_string(), ca_path))
            return None
        if issuer in chain:
            break
        chain.append(issuer)
    for cert in chain[1:]:
        if not is_ca(cert):
            problems.add(path, "issuer %s is not a CA (basicConstraints CA:TRUE missing)" % cert.subject.rfc4514_string())
            return None
    return chain


def _crl_problems(crl_path, pairs, problems):
    """``pairs``: (certificate or None, the CA that issued it) for every CA that needs a CRL."""
    data = _read(crl_path, "CRL", problems)
    if data is None:
        return
    crls = []
    if _looks_der(data):
        problems.add(crl_path, "is a DER CRL; nginx reads only PEM")
        return
    blocks = _blocks(crl_path, data, problems, "CRL")
    if blocks is None:
        return
    for block in blocks:
        if block.label == "X509 CRL":
            try:
                crls.append(x509.load_der_x509_crl(block.der))
            except ValueError as exc:
                problems.add(crl_path, "PEM block %d (X509 CRL) is a corrupt CRL (%s)" % (block.number, exc))
                return
    if not crls:
        problems.add(crl_path, "holds no PEM CRL")
        return
    now = utcnow()
    # nginx (OpenSSL with CRL checking) needs a current CRL from every CA in the path.
    for child, ca in pairs:
        crl = next((c for c in crls if c.issuer == ca.subject and c.is_signature_valid(ca.public_key())), None)
        if crl is None:
            problems.add(crl_path, "has no CRL signed by %s; nginx then rejects every certificate it issued"
                         % ca.subject.rfc4514_string())
            continue
        if crl_next_update(crl) is not None and crl_next_update(crl) <= now:
            problems.add(crl_path, "CRL of %s expired on %s; an expired CRL makes nginx reject every client"
                         % (ca.subject.rfc4514_string(), crl_next_update(crl).isoformat()))
        if child is not None and crl.get_revoked_certificate_by_serial_number(child.serial_number) is not None:
            problems.add(crl_path, "revokes %s (serial %X)" % (child.subject.rfc4514_string(), child.serial_number))


def check(path, ca_path=None, privatekey_path=None, privatekey_passphrase=None, purpose=None,
          expected_name=None, verify_depth=None, min_days_remaining=0, crl_path=None, convert_der=False):
    """Return (problems, facts, converted_pem): ``path`` checked as a CA bundle with
    ``purpose="ca"``, else as a server or client certificate."""
    if purpose == "ca":
        return check_ca_bundle(path, ca_path, privatekey_path, privatekey_passphrase, min_days_remaining, crl_path,
                               convert_der)
    return check_certificate(path, ca_path, privatekey_path, privatekey_passphrase, purpose, expected_name,
                             verify_depth, min_days_remaining, crl_path, convert_der)


def _read_inputs(path, what, convert_der, privatekey_path, privatekey_passphrase, ca_path, problems):
    """(certificates in ``path``, converted PEM or None, CAs in ``ca_path``), recording every
    problem of the files, the private key's and the CA bundle's included."""
    data = _read(path, what, problems)
    certs, converted = _certificates(path, data, problems, convert_der, what) if data is not None else ([], None)
    if privatekey_path:
        _key_problems(privatekey_path, privatekey_passphrase, certs[0] if certs else None, problems)
    bundle = []
    if ca_path:
        ca_data = _read(ca_path, "CA bundle", problems)
        if ca_data is not None:
            bundle = _certificates(ca_path, ca_data, problems, what="CA bundle")[0]
            for ca in bundle:
                if not is_ca(ca):
                    problems.add(ca_path, "%s is not a CA certificate" % ca.subject.rfc4514_string())
                _validity(ca_path, ca, 0, problems, "CA %s" % ca.subject.rfc4514_string())
    return certs, converted, bundle


def check_ca_bundle(path, ca_path=None, privatekey_path=None, privatekey_passphrase=None, min_days_remaining=0,
                    crl_path=None, convert_der=False):
    """``path`` as ssl_client_certificate / proxy_ssl_trusted_certificate read a CA bundle: every
    certificate in it a valid CA, and with ``crl_path`` a current CRL from each. Returns
    (problems, facts, converted_pem)."""
    problems = Problems()
    certs, converted, _bundle = _read_inputs(path, "CA bundle", convert_der, privatekey_path, privatekey_passphrase,
                                             ca_path, problems)
    if not certs:
        return problems, {}, converted
    facts = describe(certs[0])
    facts["bundle"] = [c.subject.rfc4514_string() for c in certs]
    for cert in certs:
        label = "CA %s" % cert.subject.rfc4514_string()
        if not is_ca(cert):
            problems.add(path, "%s is not a CA certificate (basicConstraints CA:TRUE missing)"
                         % cert.subject.rfc4514_string())
        _weak_key(path, cert.public_key(), problems)
        _validity(path, cert, min_days_remaining, problems, label)
    if crl_path:
        _crl_problems(crl_path, [(None, ca) for ca in certs if is_ca(ca)], problems)
    return problems, facts, converted


def check_certificate(path, ca_path=None, privatekey_path=None, privatekey_passphrase=None, purpose=None,
                      expected_name=None, verify_depth=None, min_days_remaining=0, crl_path=None, convert_der=False):
    """``path`` as a server or client certificate (the leaf, then its intermediates) that
    chains to ``ca_path``. Returns (problems, facts, converted_pem)."""
    problems = Problems()
    certs, converted, bundle = _read_inputs(path, "certificate", convert_der, privatekey_path, privatekey_passphrase,
                                            ca_path, problems)
    if not certs:
        return problems, {}, converted
    leaf = certs[0]
    facts = describe(leaf)
    facts["purposes"] = purposes_of(leaf)
    facts["chain"] = [c.subject.rfc4514_string() for c in certs[1:]]
    _weak_key(path, leaf.public_key(), problems)
    _validity(path, leaf, min_days_remaining, problems, "certificate")
    for cert in certs[1:]:
        _validity(path, cert, 0, problems, "chain certificate %s" % cert.subject.rfc4514_string())
    misplaced_leaf = next((i for i, c in enumerate(certs) if i and not is_ca(c)), None)
    if is_ca(leaf) and misplaced_leaf is not None:
        problems.add(path, "chain is out of order: the leaf (certificate %d, %s) must come first, then its issuers"
                     % (misplaced_leaf + 1, certs[misplaced_leaf].subject.rfc4514_string()))
        return problems, facts, converted
    if is_ca(leaf):
        problems.add(path, "the first certificate is a CA certificate, not a server or client certificate")
    elif is_self_signed(leaf):
        problems.add(path, "the certificate is self-signed; it must be issued by a CA")
    if purpose and facts["purposes"] and purpose not in facts["purposes"]:
        problems.add(path, "extended key usage allows %s, not %s (nginx: \"unsupported certificate purpose\")"
                     % (", ".join(facts["purposes"]), PURPOSES[purpose].eku_name))
    if purpose and not facts["purposes"] and extension_value(leaf, x509.ExtendedKeyUsage) is not None:
        problems.add(path, "extended key usage allows neither %s"
                     % " nor ".join(PURPOSES[p].eku_name for p in LEAF_PURPOSES))
    if expected_name and not name_matches(leaf, expected_name):
        problems.add(path, "%s is not among its names %s" % (expected_name, sans_of(leaf) or [leaf.subject.rfc4514_string()]))
    if bundle and not is_self_signed(leaf) and not is_ca(leaf):
        chain = _build_path(path, certs, bundle, ca_path, problems)
        if chain is not None:
            facts["verified_chain"] = [c.subject.rfc4514_string() for c in chain]
            depth = len(chain) - 1
            if verify_depth is not None and depth > verify_depth:
                problems.add(path, "chain needs verify depth %d (leaf, %d intermediate(s), root), more than %d"
                             % (depth, depth - 1, verify_depth))
            if crl_path:
                _crl_problems(crl_path, list(zip(chain, chain[1:])), problems)
    return problems, facts, converted
