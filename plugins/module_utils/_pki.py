# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ensure a private CA, its CRL, and the leaf certificates it signs, idempotently.

Every ``ensure``/operation first reads and checks all its inputs, then decides what (if
anything) must be made, and only then writes through a :class:`FileWriter`: a bad input
fails before any file changes, and check mode and diffs behave the same for every module.

Leaf certificates come in two flows:

* ``issue``: key and certificate made where the CA key is (the controller, or a test).
* key stays home: ``request`` makes the key and a CSR on the host that uses them, ``sign``
  signs the CSR where the CA key is, ``install`` puts the certificate next to its key.
  Only the CSR and the certificate travel.
"""

import datetime

from ._crypto import (
    PKIError,
    build_certificate,
    build_crl,
    build_csr,
    ca_extensions,
    certificate_pem,
    common_name_of,
    crl_last_update,
    crl_next_update,
    crl_number_of,
    crl_pem,
    crl_signed_by,
    csr_pem,
    describe,
    generate_private_key,
    is_ca,
    is_self_signed,
    issued_by,
    key_type_of,
    leaf_extensions,
    load_certificate,
    load_certificates,
    load_crl,
    load_csr,
    load_private_key,
    name_from_cn,
    not_after,
    parse_san,
    path_length_of,
    private_key_pem,
    purposes_of,
    purposes_of_csr,
    revoked_of,
    same_public_key,
    san_strings,
    sans_of,
    sans_of_csr,
    signed_by,
    to_passphrase,
    utcnow,
)
from ._files import read_file

OPERATIONS = ("issue", "request", "sign", "install")


def _check_validity(valid_days, renew_before_days, prefix=""):
    if valid_days < 1:
        raise PKIError("%svalid_days must be at least 1, not %d" % (prefix, valid_days))
    if not 0 <= renew_before_days < valid_days:
        # Otherwise every run would find the new certificate (or CRL) due for renewal.
        raise PKIError("%srenew_before_days (%d) must be at least 0 and smaller than %svalid_days (%d)"
                       % (prefix, renew_before_days, prefix, valid_days))


def _expiry_reason(cert, renew_before_days):
    left = not_after(cert) - utcnow()
    if left < datetime.timedelta(days=renew_before_days):
        return "expires %s, within renew_before_days=%d" % (not_after(cert).isoformat(), renew_before_days)
    return None


def _load_owned(path, loader, what):
    """(object, None) for a certificate, CSR or CRL that this module manages, or (None, why)
    when it is missing or unreadable: such a file is made again, which is not an error."""
    data = read_file(path)
    if data is None:
        return None, "no %s at %s" % (what, path)
    try:
        return loader(data, path), None
    except PKIError:
        return None, "no readable %s at %s" % (what, path)


def _load_existing_cert(path):
    return _load_owned(path, load_certificate, "certificate")[0]


class _Key:
    """A private key at ``path``: loaded when it fits, generated (not yet written) when not.

    ``rekeyed`` says why a kept key is written again under a new passphrase (host keys only)."""

    def __init__(self, path, key_type, passphrase, reasons):
        self.path = path
        self.passphrase = passphrase
        self.rekeyed = None
        data = read_file(path)
        self.new = True
        if data is not None:
            # An unreadable or undecryptable key is an error, never silently replaced:
            # certificates issued for it may be in use elsewhere.
            key = self._load(data)
            if key_type is None or key_type_of(key) == key_type:
                self.key, self.new = key, False
                return
            self.rekeyed = None
            reasons.append("key type is %s, %s was asked" % (key_type_of(key), key_type))
        else:
            reasons.append("no private key at %s" % path)
        self.key = generate_private_key(key_type or "ecdsa-p256")

    def _load(self, data):
        return load_private_key(data, self.path, self.passphrase)

    def save(self, writer, mode, owner, group):
        if self.new or self.rekeyed:
            writer.write(self.path, private_key_pem(self.key, self.passphrase), mode, secret=True,
                         owner=owner, group=group)
        else:
            writer.attributes(self.path, mode, owner, group)


def _read_passphrase_file(path):
    """The passphrase nginx reads from ``path`` (ssl_password_file), or None when there is none."""
    if not path:
        return None
    try:
        data = read_file(path)
    except OSError as exc:
        raise PKIError("%s: cannot be read (%s)" % (path, exc.strerror))
    if data is None:
        return None
    data = data[:-1] if data.endswith(b"\n") else data
    data = data[:-1] if data.endswith(b"\r") else data
    return data or None


def _open_host_key(data, path, passphrase, passphrase_file=None):
    """(key, the passphrase that opened it): ``passphrase``; for a plain key, none; else the
    passphrase still in ``passphrase_file``. The PKIError when none does names no passphrase."""
    wanted = to_passphrase(passphrase) or None
    if b"ENCRYPTED" not in data:
        # PKCS#8 says ENCRYPTED PRIVATE KEY, a legacy PEM key Proc-Type: 4,ENCRYPTED.
        return load_private_key(data, path, None), None
    old = _read_passphrase_file(passphrase_file)
    for candidate in dict.fromkeys(p for p in (wanted, old) if p):
        try:
            return load_private_key(data, path, candidate), candidate
        except PKIError:
            continue
    if wanted and old:
        raise PKIError("%s: the passphrase (privatekey_passphrase) does not decrypt the private key, nor does the "
                       "passphrase in %s" % (path, passphrase_file))
    if wanted:
        raise PKIError("%s: the passphrase (privatekey_passphrase) does not decrypt the private key" % path)
    if old:
        raise PKIError("%s: the private key is encrypted, no passphrase (privatekey_passphrase) was given, and the "
                       "passphrase in %s does not decrypt it" % (path, passphrase_file))
    raise PKIError("%s: the private key is encrypted and no passphrase was given (privatekey_passphrase)" % path)


class _HostKey(_Key):
    """A host key that nginx decrypts with the passphrase in ``passphrase_file``
    (ssl_password_file). A new passphrase re-encrypts the key, opened with the old one still
    in that file; the file is then written after the key, so the two always match."""

    def __init__(self, path, key_type, passphrase, reasons, passphrase_file=None):
        self.passphrase_file = passphrase_file
        super().__init__(path, key_type, passphrase, reasons)

    def _load(self, data):
        key, used = _open_host_key(data, self.path, self.passphrase, self.passphrase_file)
        if used != (to_passphrase(self.passphrase) or None):
            if not self.passphrase:
                self.rekeyed = "private key written unencrypted, as no passphrase is asked any more"
            elif used:
                self.rekeyed = "private key re-encrypted with the new passphrase"
            else:
                self.rekeyed = "private key encrypted with the new passphrase"
        return key

    def save(self, writer, mode, owner, group):
        super().save(writer, mode, owner, group)
        if not self.passphrase_file:
            return
        if self.passphrase:
            writer.write(self.passphrase_file, to_passphrase(self.passphrase) + b"\n", mode, secret="passphrase",
                         owner=owner, group=group)
        else:
            writer.remove(self.passphrase_file, secret="passphrase")


def _parse_serial(value):
    text = str(value).strip().replace(":", "")
    if text.lower().startswith("0x"):
        text = text[2:]
    try:
        if not text or "_" in text:
            raise ValueError(text)
        serial = int(text, 16)
    except ValueError:
        raise PKIError("revoked_serials: %r is not a hexadecimal serial number (as shown by "
                       "openssl x509 -serial or returned as 'serial')" % value)
    if serial <= 0:
        raise PKIError("revoked_serials: %r is not a positive serial number" % value)
    return serial


def load_signer(ca_path, ca_privatekey_path, ca_privatekey_passphrase=None, option="ca_path"):
    """Read and cross-check a signing CA: its certificate file (the CA first, then optionally
    its own chain) and its key. Every problem names its file."""
    data = read_file(ca_path)
    if data is None:
        raise PKIError("%s: CA certificate not found (%s)" % (ca_path, option))
    bundle = load_certificates(data, ca_path)
    ca_cert = bundle[0]
    if not is_ca(ca_cert):
        raise PKIError("%s: not a CA certificate (basicConstraints CA:TRUE missing)" % ca_path)
    key_data = read_file(ca_privatekey_path)
    if key_data is None:
        raise PKIError("%s: CA private key not found" % ca_privatekey_path)
    ca_key = load_private_key(key_data, ca_privatekey_path, ca_privatekey_passphrase)
    if not same_public_key(ca_cert.public_key(), ca_key.public_key()):
        raise PKIError("%s: private key does not belong to CA certificate %s" % (ca_privatekey_path, ca_path))
    return ca_cert, ca_key, bundle


class CertificateAuthority:
    """A root (self-signed) or intermediate (signed by a parent) CA, and optionally its CRL."""

    def __init__(self, writer, path, privatekey_path, common_name, key_type="ecdsa-p256",
                 valid_days=3650, renew_before_days=90, path_length=None, privatekey_passphrase=None,
                 parent_path=None, parent_privatekey_path=None, parent_privatekey_passphrase=None,
                 chain_path=None, crl_path=None, revoked_serials=None, revoked_certificates=None,
                 crl_valid_days=7, crl_renew_before_days=2,
                 mode="0644", privatekey_mode="0600", owner=None, group=None):
        _check_validity(valid_days, renew_before_days)
        if crl_path:
            _check_validity(crl_valid_days, crl_renew_before_days, prefix="crl_")
        if bool(parent_path) != bool(parent_privatekey_path):
            raise PKIError("parent_path and parent_privatekey_path go together: an intermediate CA needs both")
        if path_length is not None and path_length < 0:
            raise PKIError("path_length must be 0 or more, not %d" % path_length)
        self.writer = writer
        self.path = path
        self.privatekey_path = privatekey_path
        self.common_name = common_name
        self.key_type = key_type
        self.valid_days = valid_days
        self.renew_before_days = renew_before_days
        self.path_length = path_length
        self.privatekey_passphrase = privatekey_passphrase
        self.parent_path = parent_path
        self.parent_privatekey_path = parent_privatekey_path
        self.parent_privatekey_passphrase = parent_privatekey_passphrase
        self.chain_path = chain_path
        self.crl_path = crl_path
        self.revoked_serials = revoked_serials or []
        self.revoked_certificates = revoked_certificates or []
        self.crl_valid_days = crl_valid_days
        self.crl_renew_before_days = crl_renew_before_days
        self.mode = mode
        self.privatekey_mode = privatekey_mode
        self.owner = owner
        self.group = group

    def ensure(self):
        # Every input is read and checked before anything is written.
        parent = None
        if self.parent_path:
            parent = load_signer(self.parent_path, self.parent_privatekey_path, self.parent_privatekey_passphrase,
                                 option="parent_path")
            self._check_parent_allows(parent[0])
        revoked_serials = [_parse_serial(s) for s in self.revoked_serials]
        revoked_files = [(p, self._load_revoked(p)) for p in self.revoked_certificates]

        reasons = []
        key = _Key(self.privatekey_path, self.key_type, self.privatekey_passphrase, reasons)
        subject = name_from_cn(self.common_name)
        for path, cert in revoked_files:
            if cert.issuer != subject or key.new or not signed_by(cert, key.key.public_key()):
                raise PKIError("%s: not issued by this CA (%s), so this CA cannot revoke it"
                               % (path, subject.rfc4514_string()))
            revoked_serials.append(cert.serial_number)

        cert = _load_existing_cert(self.path)
        if cert is None:
            reasons.append("no readable CA certificate at %s" % self.path)
        elif not key.new:
            reasons.extend(self._drift(cert, key.key, parent))
        if reasons:
            # Re-signing with the same key and subject keeps every issued leaf valid.
            issuer_name, signing_key = (parent[0].subject, parent[1]) if parent else (subject, key.key)
            cert = build_certificate(subject, issuer_name, key.key.public_key(), signing_key, self.valid_days,
                                     ca_extensions(key.key.public_key(), self.path_length,
                                                   parent[0].public_key() if parent else None))

        key.save(self.writer, self.privatekey_mode, self.owner, self.group)
        if reasons:
            self.writer.write(self.path, certificate_pem(cert), self.mode, owner=self.owner, group=self.group)
        else:
            self.writer.attributes(self.path, self.mode, self.owner, self.group)
        if self.chain_path:
            chain = certificate_pem(cert) + b"".join(certificate_pem(c) for c in (parent[2] if parent else []))
            self.writer.write(self.chain_path, chain, self.mode, owner=self.owner, group=self.group)
        result = {"reasons": reasons, "certificate": describe(cert)}
        if self.crl_path:
            result["crl"] = self._ensure_crl(cert, key.key, set(revoked_serials), result["reasons"])
        return result

    def _check_parent_allows(self, parent_cert):
        limit = path_length_of(parent_cert)
        if limit == 0:
            raise PKIError("%s: the parent CA has path length 0 and may not sign another CA" % self.parent_path)
        if limit is not None and (self.path_length is None or self.path_length >= limit):
            raise PKIError("path_length: the parent CA in %s allows %d CA(s) below it, so this intermediate's "
                           "path_length must be at most %d, not %s"
                           % (self.parent_path, limit, limit - 1, "unlimited" if self.path_length is None else self.path_length))

    @staticmethod
    def _load_revoked(path):
        data = read_file(path)
        if data is None:
            raise PKIError("%s: certificate to revoke not found (revoked_certificates)" % path)
        return load_certificates(data, path)[0]

    def _drift(self, cert, key, parent):
        found = []
        if not same_public_key(cert.public_key(), key.public_key()):
            found.append("CA certificate does not belong to %s" % self.privatekey_path)
        if not is_ca(cert):
            found.append("%s is not a CA certificate" % self.path)
        if common_name_of(cert) != self.common_name:
            found.append("common name is %r, %r was asked" % (common_name_of(cert), self.common_name))
        if parent and not issued_by(cert, parent[0]):
            found.append("CA certificate was not signed by the parent CA in %s" % self.parent_path)
        if not parent and not is_self_signed(cert):
            found.append("CA certificate is not self-signed, a root CA was asked")
        if path_length_of(cert) != self.path_length:
            found.append("path length is %s, %s was asked" % (path_length_of(cert), self.path_length))
        expiry = _expiry_reason(cert, self.renew_before_days)
        if expiry:
            found.append(expiry)
        return found

    def _ensure_crl(self, ca_cert, ca_key, revoked_serials, reasons):
        number, why = 0, []
        existing, missing = _load_owned(self.crl_path, load_crl, "CRL")
        if missing:
            why.append(missing)
        dates = {}
        if existing is not None:
            number = crl_number_of(existing)
            dates = revoked_of(existing)
            next_update = crl_next_update(existing)
            left = next_update - utcnow() if next_update is not None else None
            if not crl_signed_by(existing, ca_cert):
                why.append("CRL was not signed by this CA")
            elif set(dates) != revoked_serials:
                why.append("CRL revokes %s, %s were asked" % (_serials(dates), _serials(revoked_serials)))
            elif left is None:
                why.append("CRL has no next update time")
            elif left < datetime.timedelta(days=self.crl_renew_before_days):
                why.append("CRL next update %s is within crl_renew_before_days=%d"
                           % (crl_next_update(existing).isoformat(), self.crl_renew_before_days))
            elif left > datetime.timedelta(days=self.crl_valid_days, hours=1):
                why.append("CRL next update %s is further away than crl_valid_days=%d"
                           % (crl_next_update(existing).isoformat(), self.crl_valid_days))
        crl = existing
        if why:
            now = utcnow()
            # A serial keeps the revocation date it was first listed with.
            revoked = dict((serial, dates.get(serial, now)) for serial in revoked_serials)
            crl = build_crl(ca_cert, ca_key, revoked, number + 1, self.crl_valid_days)
            self.writer.write(self.crl_path, crl_pem(crl), self.mode, owner=self.owner, group=self.group)
            reasons.extend(why)
        else:
            self.writer.attributes(self.crl_path, self.mode, self.owner, self.group)
        next_update = crl_next_update(crl)
        return {
            "path": self.crl_path,
            "last_update": crl_last_update(crl).isoformat(),
            "next_update": next_update.isoformat(),
            "days_remaining": (next_update - utcnow()).days,
            "crl_number": crl_number_of(crl),
            "revoked_serials": _serials(revoked_of(crl)),
        }


def _serials(serials):
    return [format(s, "X") for s in sorted(serials)]


class LeafCertificate:
    """A server or client certificate: what is asked of it, and the four operations."""

    def __init__(self, writer, purpose, common_name=None, subject_alt_names=(), operation="issue", path=None,
                 privatekey_path=None, privatekey_passphrase=None, ca_path=None, ca_privatekey_path=None,
                 ca_privatekey_passphrase=None, csr_path=None, csr_content=None, certificate_content=None,
                 key_type="ecdsa-p256", valid_days=365, renew_before_days=30, chain_path=None,
                 mode="0644", privatekey_mode="0600", owner=None, group=None, privatekey_passphrase_file=None):
        if operation not in OPERATIONS:
            raise PKIError("operation must be one of %s, not %r" % (", ".join(OPERATIONS), operation))
        if purpose not in ("server", "client"):
            raise PKIError("purpose must be server or client, not %r" % purpose)
        if operation != "install":
            _check_validity(valid_days, renew_before_days)
            if not common_name:
                raise PKIError("common_name is required to %s a certificate" % operation)
        self.writer = writer
        self.operation = operation
        self.purpose = purpose
        self.common_name = common_name
        self.sans = [parse_san(entry) for entry in subject_alt_names or ()]
        self.path = path
        self.privatekey_path = privatekey_path
        self.privatekey_passphrase = privatekey_passphrase
        self.privatekey_passphrase_file = privatekey_passphrase_file
        self.ca_path = ca_path
        self.ca_privatekey_path = ca_privatekey_path
        self.ca_privatekey_passphrase = ca_privatekey_passphrase
        self.csr_path = csr_path
        self.csr_content = csr_content
        self.certificate_content = certificate_content
        self.key_type = key_type
        self.valid_days = valid_days
        self.renew_before_days = renew_before_days
        self.chain_path = chain_path
        self.mode = mode
        self.privatekey_mode = privatekey_mode
        self.owner = owner
        self.group = group

    def ensure(self):
        return {"issue": self._issue, "request": self._request, "sign": self._sign_csr,
                "install": self._install}[self.operation]()

    # --- what is asked ------------------------------------------------------------------------

    def _drift(self, cert, public_key, ca_cert, key_label):
        found = []
        if not same_public_key(cert.public_key(), public_key):
            found.append("certificate does not belong to %s" % key_label)
        if ca_cert is not None and not issued_by(cert, ca_cert):
            found.append("certificate was not signed by the CA in %s" % self.ca_path)
        if common_name_of(cert) != self.common_name:
            found.append("common name is %r, %r was asked" % (common_name_of(cert), self.common_name))
        have, want = sorted(sans_of(cert)), sorted(san_strings(self.sans))
        if have != want:
            found.append("subject alt names are %s, %s were asked" % (have, want))
        if purposes_of(cert) != [self.purpose]:
            found.append("purpose is %s, %s was asked" % (purposes_of(cert) or "unset", self.purpose))
        expiry = _expiry_reason(cert, self.renew_before_days)
        if expiry:
            found.append(expiry)
        return found

    def _sign(self, public_key, ca_cert, ca_key):
        return build_certificate(
            name_from_cn(self.common_name), ca_cert.subject, public_key, ca_key, self.valid_days,
            leaf_extensions(public_key, ca_cert.public_key(), self.purpose, self.sans))

    @staticmethod
    def _chain_pem(cert, ca_bundle):
        # The leaf, then its intermediates; a self-signed root stays out, peers bring their own.
        return certificate_pem(cert) + b"".join(certificate_pem(c) for c in ca_bundle if not is_self_signed(c))

    def _write_certificate(self, cert, rewrite, chain_pem):
        if rewrite:
            self.writer.write(self.path, certificate_pem(cert), self.mode, owner=self.owner, group=self.group)
        else:
            self.writer.attributes(self.path, self.mode, self.owner, self.group)
        if self.chain_path:
            self.writer.write(self.chain_path, chain_pem, self.mode, owner=self.owner, group=self.group)

    # --- issue: key and certificate made here, signed by the CA files here --------------------

    def _issue(self):
        # Read the signer first: a broken CA must fail before any file is touched.
        ca_cert, ca_key, bundle = load_signer(self.ca_path, self.ca_privatekey_path, self.ca_privatekey_passphrase)
        reasons = []
        key = self._key(reasons)
        cert = _load_existing_cert(self.path)
        if cert is None:
            reasons.append("no readable certificate at %s" % self.path)
        elif not key.new:
            reasons.extend(self._drift(cert, key.key.public_key(), ca_cert, self.privatekey_path))
        if reasons:
            cert = self._sign(key.key.public_key(), ca_cert, ca_key)
        key.save(self.writer, self.privatekey_mode, self.owner, self.group)
        self._write_certificate(cert, bool(reasons), self._chain_pem(cert, bundle))
        return {"reasons": reasons + ([key.rekeyed] if key.rekeyed else []), "certificate": describe(cert)}

    def _key(self, reasons):
        return _HostKey(self.privatekey_path, self.key_type, self.privatekey_passphrase, reasons,
                        self.privatekey_passphrase_file)

    # --- request: key (and CSR) on the host that uses them -------------------------------------

    def _request(self):
        reasons = []
        key = self._key(reasons)
        csr = None
        if self.csr_path:
            csr, missing = _load_owned(self.csr_path, load_csr, "CSR")
            if missing:
                reasons.append(missing)
            elif not key.new:
                reasons.extend(self._csr_drift(csr, key.key))
        if csr is None or reasons:
            csr = build_csr(key.key, name_from_cn(self.common_name), self.purpose, self.sans)
        key.save(self.writer, self.privatekey_mode, self.owner, self.group)
        if self.csr_path:
            if reasons:
                self.writer.write(self.csr_path, csr_pem(csr), self.mode, owner=self.owner, group=self.group)
            else:
                self.writer.attributes(self.csr_path, self.mode, self.owner, self.group)
        # A new passphrase alone leaves the CSR and the certificate as they are.
        reasons += [key.rekeyed] if key.rekeyed else []
        result = {"reasons": reasons, "csr": csr_pem(csr).decode("ascii"), "existing_certificate": None,
                  "certificate": None}
        existing = _load_existing_cert(self.path) if self.path else None
        if existing is not None:
            result["existing_certificate"] = certificate_pem(existing).decode("ascii")
            result["certificate"] = describe(existing)
            result["certificate_reasons"] = self._drift(existing, key.key.public_key(), None, self.privatekey_path)
        return result

    def _csr_drift(self, csr, key):
        found = []
        if not same_public_key(csr.public_key(), key.public_key()):
            found.append("CSR does not belong to %s" % self.privatekey_path)
        if csr.subject != name_from_cn(self.common_name):
            found.append("CSR subject is %s, CN=%s was asked" % (csr.subject.rfc4514_string(), self.common_name))
        if sorted(sans_of_csr(csr)) != sorted(san_strings(self.sans)):
            found.append("CSR subject alt names are %s, %s were asked"
                         % (sorted(sans_of_csr(csr)), sorted(san_strings(self.sans))))
        if purposes_of_csr(csr) != [self.purpose]:
            found.append("CSR purpose is %s, %s was asked" % (purposes_of_csr(csr) or "unset", self.purpose))
        return found

    # --- sign: a CSR, where the CA key is -----------------------------------------------------

    def _sign_csr(self):
        ca_cert, ca_key, bundle = load_signer(self.ca_path, self.ca_privatekey_path, self.ca_privatekey_passphrase)
        if self.csr_content:
            csr = load_csr(self.csr_content.encode("ascii") if not isinstance(self.csr_content, bytes)
                           else self.csr_content, "csr_content")
        else:
            data = read_file(self.csr_path)
            if data is None:
                raise PKIError("%s: CSR not found (csr_path)" % self.csr_path)
            csr = load_csr(data, self.csr_path)
        # Only the public key comes from the request (its signature proves the requester holds
        # the key); subject, names and purpose are what this task asks, never what the CSR asks.
        reasons = []
        cert = None
        if self.certificate_content:
            cert = load_certificates(_to_bytes(self.certificate_content), "certificate_content")[0]
            reasons.extend(self._drift(cert, csr.public_key(), ca_cert, "the CSR's key"))
        elif self.path:
            cert = _load_existing_cert(self.path)
            if cert is None:
                reasons.append("no readable certificate at %s" % self.path)
            else:
                reasons.extend(self._drift(cert, csr.public_key(), ca_cert, "the CSR's key"))
        else:
            reasons.append("no current certificate given")
        if reasons:
            cert = self._sign(csr.public_key(), ca_cert, ca_key)
        chain = self._chain_pem(cert, bundle)
        if self.path:
            self._write_certificate(cert, bool(reasons), chain)
        return {"reasons": reasons, "certificate": describe(cert),
                "certificate_pem": certificate_pem(cert).decode("ascii"), "chain_pem": chain.decode("ascii"),
                "signed": bool(reasons)}

    # --- install: a certificate next to its key ------------------------------------------------

    def _install(self):
        certs = load_certificates(_to_bytes(self.certificate_content), "certificate_content")
        leaf = certs[0]
        data = read_file(self.privatekey_path)
        if data is None and self.writer.module.check_mode:
            # In check mode the request step only pretended to make the key.
            self.writer.changed = True
            return {"reasons": ["no private key at %s yet; the certificate would be installed next to it"
                                % self.privatekey_path], "certificate": describe(leaf)}
        if data is None:
            raise PKIError("%s: private key not found; install puts a certificate next to its key" % self.privatekey_path)
        key, used = _open_host_key(data, self.privatekey_path, self.privatekey_passphrase,
                                   self.privatekey_passphrase_file)
        if used != (to_passphrase(self.privatekey_passphrase) or None) and not self.writer.module.check_mode:
            # Only check mode may find the key before the request task re-encrypts it.
            raise PKIError("%s: the private key is not encrypted with privatekey_passphrase yet; "
                           "operation=request re-encrypts it" % self.privatekey_path)
        problems = []
        if not same_public_key(leaf.public_key(), key.public_key()):
            problems.append("the certificate (%s) does not belong to the private key in %s"
                            % (leaf.subject.rfc4514_string(), self.privatekey_path))
        if self.purpose not in purposes_of(leaf):
            problems.append("the certificate's extended key usage allows %s, not %s"
                            % (purposes_of(leaf) or "nothing", self.purpose))
        if not_after(leaf) <= utcnow():
            problems.append("the certificate expired on %s" % not_after(leaf).isoformat())
        for child, parent in zip(certs, certs[1:]):
            if not issued_by(child, parent):
                problems.append("the chain is out of order: %s was not issued by the next certificate, %s"
                                % (child.subject.rfc4514_string(), parent.subject.rfc4514_string()))
        if self.ca_path:
            problems.extend(self._check_anchor(certs))
        if problems:
            raise PKIError("certificate_content: refusing to install it at %s: %s" % (self.path, "; ".join(problems)))
        existing = _load_existing_cert(self.path)
        rewrite = existing is None or certificate_pem(existing) != certificate_pem(leaf)
        chain = b"".join(certificate_pem(c) for c in certs)
        self._write_certificate(leaf, rewrite, chain)
        return {"reasons": ["certificate at %s differs" % self.path] if rewrite else [],
                "certificate": describe(leaf)}

    def _check_anchor(self, certs):
        data = read_file(self.ca_path)
        if data is None:
            return ["%s: CA certificate not found (ca_path)" % self.ca_path]
        anchors = load_certificates(data, self.ca_path)
        top = certs[-1]
        if any(certificate_pem(top) == certificate_pem(a) for a in anchors) or any(issued_by(top, a) for a in anchors):
            return []
        return ["the certificate does not chain to a CA in %s" % self.ca_path]


def _to_bytes(value):
    return value if isinstance(value, bytes) else value.encode("utf-8")
