# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ensure a private CA and the leaf certificates it signs, idempotently.

Each ``ensure`` reads what is on disk, decides what (if anything) must be made, and writes
through a :class:`FileWriter`, so check mode and diffs behave the same for every module.
"""

import datetime

from ._crypto import (
    PKIError,
    build_certificate,
    ca_extensions,
    certificate_pem,
    common_name_of,
    describe,
    generate_private_key,
    is_ca,
    issued_by,
    key_type_of,
    leaf_extensions,
    load_certificate,
    load_private_key,
    name_from_cn,
    not_after,
    parse_san,
    private_key_pem,
    purposes_of,
    same_public_key,
    san_strings,
    sans_of,
    utcnow,
)
from ._files import read_file


def _ensure_key(writer, path, key_type, mode, owner, group, reasons):
    """Load the private key at ``path``; make a new one when it is missing or of another type."""
    data = read_file(path)
    if data is not None:
        key = load_private_key(data, path)
        if key_type_of(key) == key_type:
            writer.attributes(path, mode, owner, group)
            return key, False
        reasons.append("key type is %s, %s was asked" % (key_type_of(key), key_type))
    else:
        reasons.append("no private key at %s" % path)
    key = generate_private_key(key_type)
    writer.write(path, private_key_pem(key), mode, secret=True, owner=owner, group=group)
    return key, True


def _check_validity(valid_days, renew_before_days):
    if valid_days < 1:
        raise PKIError("valid_days must be at least 1, not %d" % valid_days)
    if not 0 <= renew_before_days < valid_days:
        # Otherwise every run would find the new certificate due for renewal.
        raise PKIError("renew_before_days (%d) must be at least 0 and smaller than valid_days (%d)"
                       % (renew_before_days, valid_days))


def _expiry_reason(cert, renew_before_days):
    left = not_after(cert) - utcnow()
    if left < datetime.timedelta(days=renew_before_days):
        return "expires %s, within renew_before_days=%d" % (not_after(cert).isoformat(), renew_before_days)
    return None


def _load_existing_cert(path):
    data = read_file(path)
    if data is None:
        return None
    try:
        return load_certificate(data, path)
    except PKIError:
        # An unreadable certificate we own is replaced, not fatal.
        return None


class CertificateAuthority:
    """A self-signed root CA: key and certificate files."""

    def __init__(self, writer, path, privatekey_path, common_name, key_type="ecdsa-p256",
                 valid_days=3650, renew_before_days=90, path_length=None,
                 mode="0644", privatekey_mode="0600", owner=None, group=None):
        _check_validity(valid_days, renew_before_days)
        self.writer = writer
        self.path = path
        self.privatekey_path = privatekey_path
        self.common_name = common_name
        self.key_type = key_type
        self.valid_days = valid_days
        self.renew_before_days = renew_before_days
        self.path_length = path_length
        self.mode = mode
        self.privatekey_mode = privatekey_mode
        self.owner = owner
        self.group = group

    def ensure(self):
        reasons = []
        key, new_key = _ensure_key(self.writer, self.privatekey_path, self.key_type,
                                   self.privatekey_mode, self.owner, self.group, reasons)
        cert = _load_existing_cert(self.path)
        if cert is None:
            reasons.append("no readable CA certificate at %s" % self.path)
        elif not new_key:
            reasons.extend(self._drift(cert, key))
        if reasons:
            # Re-signing with the same key and subject keeps every issued leaf valid.
            subject = name_from_cn(self.common_name)
            cert = build_certificate(subject, subject, key.public_key(), key, self.valid_days,
                                     ca_extensions(key.public_key(), self.path_length))
            self.writer.write(self.path, certificate_pem(cert), self.mode, owner=self.owner, group=self.group)
        else:
            self.writer.attributes(self.path, self.mode, self.owner, self.group)
        return {"reasons": reasons, "certificate": describe(cert)}

    def _drift(self, cert, key):
        found = []
        if not same_public_key(cert.public_key(), key.public_key()):
            found.append("CA certificate does not belong to %s" % self.privatekey_path)
        if not is_ca(cert):
            found.append("%s is not a CA certificate" % self.path)
        if common_name_of(cert) != self.common_name:
            found.append("common name is %r, %r was asked" % (common_name_of(cert), self.common_name))
        expiry = _expiry_reason(cert, self.renew_before_days)
        if expiry:
            found.append(expiry)
        return found


def load_signer(ca_path, ca_privatekey_path, ca_privatekey_passphrase=None):
    """Read and cross-check the CA that signs leaves; every problem names its file."""
    data = read_file(ca_path)
    if data is None:
        raise PKIError("%s: CA certificate not found" % ca_path)
    ca_cert = load_certificate(data, ca_path)
    if not is_ca(ca_cert):
        raise PKIError("%s: not a CA certificate (basicConstraints CA:TRUE missing)" % ca_path)
    key_data = read_file(ca_privatekey_path)
    if key_data is None:
        raise PKIError("%s: CA private key not found" % ca_privatekey_path)
    ca_key = load_private_key(key_data, ca_privatekey_path, ca_privatekey_passphrase)
    if not same_public_key(ca_cert.public_key(), ca_key.public_key()):
        raise PKIError("%s: private key does not belong to CA certificate %s" % (ca_privatekey_path, ca_path))
    return ca_cert, ca_key


class LeafCertificate:
    """A server or client certificate and its key, signed by a CA given by its files."""

    def __init__(self, writer, path, privatekey_path, ca_path, ca_privatekey_path, purpose,
                 common_name, subject_alt_names=(), key_type="ecdsa-p256", valid_days=365,
                 renew_before_days=30, chain_path=None, mode="0644", privatekey_mode="0600",
                 owner=None, group=None):
        if purpose not in ("server", "client"):
            raise PKIError("purpose must be server or client, not %r" % purpose)
        _check_validity(valid_days, renew_before_days)
        self.writer = writer
        self.path = path
        self.privatekey_path = privatekey_path
        self.ca_path = ca_path
        self.ca_privatekey_path = ca_privatekey_path
        self.purpose = purpose
        self.common_name = common_name
        self.sans = [parse_san(entry) for entry in subject_alt_names]
        self.key_type = key_type
        self.valid_days = valid_days
        self.renew_before_days = renew_before_days
        self.chain_path = chain_path
        self.mode = mode
        self.privatekey_mode = privatekey_mode
        self.owner = owner
        self.group = group

    def ensure(self):
        # Read the signer first: a broken CA must fail before any file is touched.
        ca_cert, ca_key = load_signer(self.ca_path, self.ca_privatekey_path)
        reasons = []
        key, new_key = _ensure_key(self.writer, self.privatekey_path, self.key_type,
                                   self.privatekey_mode, self.owner, self.group, reasons)
        cert = _load_existing_cert(self.path)
        if cert is None:
            reasons.append("no readable certificate at %s" % self.path)
        elif not new_key:
            reasons.extend(self._drift(cert, key, ca_cert))
        if reasons:
            cert = build_certificate(
                name_from_cn(self.common_name), ca_cert.subject, key.public_key(), ca_key, self.valid_days,
                leaf_extensions(key.public_key(), ca_cert.public_key(), self.purpose, self.sans))
            self.writer.write(self.path, certificate_pem(cert), self.mode, owner=self.owner, group=self.group)
        else:
            self.writer.attributes(self.path, self.mode, self.owner, self.group)
        if self.chain_path:
            self.writer.write(self.chain_path, self._chain_pem(cert, ca_cert), self.mode,
                              owner=self.owner, group=self.group)
        return {"reasons": reasons, "certificate": describe(cert)}

    @staticmethod
    def _chain_pem(cert, ca_cert):
        # The leaf, then its intermediates; a self-signed root stays out, peers bring their own.
        pem = certificate_pem(cert)
        if ca_cert.issuer != ca_cert.subject:
            pem += certificate_pem(ca_cert)
        return pem

    def _drift(self, cert, key, ca_cert):
        found = []
        if not same_public_key(cert.public_key(), key.public_key()):
            found.append("certificate does not belong to %s" % self.privatekey_path)
        if not issued_by(cert, ca_cert):
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
