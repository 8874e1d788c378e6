# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ensure a private CA, its CRL, and the leaf certificates it signs, idempotently.

Every ``ensure``/operation first reads and checks all its inputs, then decides what (if
anything) must be made, and only then writes through :class:`Files` (over a ``FileWriter``):
a bad input fails before any file changes, and check mode and diffs behave the same for
every module.

Leaf certificates come in two flows:

* ``issue``: key and certificate made where the CA key is (the controller, or a test).
* key stays home: ``request`` makes the key and a CSR on the host that uses them, ``sign``
  signs the CSR where the CA key is, ``install`` puts the certificate next to its key.
  Only the CSR and the certificate travel.

Each operation is a function that takes the pieces it needs: a :class:`LeafSpec` (what is
asked of the certificate), a :class:`HostKeyFile`, a loaded :class:`Signer`, and
:class:`Files`. :func:`ensure_leaf` builds them from the module's options.
"""

import datetime

from ._crypto import (
    LEAF_PURPOSES,
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
    key_identifier_of,
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
    revoked_of,
    same_public_key,
    san_strings,
    sans_of,
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

    def save(self, files):
        if self.new or self.rekeyed:
            files.write_private(self.path, private_key_pem(self.key, self.passphrase))
        else:
            files.keep_private(self.path)


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

    def save(self, files):
        super().save(files)
        if not self.passphrase_file:
            return
        if self.passphrase:
            files.write_private(self.passphrase_file, to_passphrase(self.passphrase) + b"\n", secret="passphrase")
        else:
            files.writer.remove(self.passphrase_file, secret="passphrase")


class Files:
    """How the files of one task are written: certificates, chains, CSRs and CRLs with
    ``mode``, private keys and password files with ``privatekey_mode``, all with ``owner``
    and ``group``; a file that is kept gets its attributes applied."""

    def __init__(self, writer, mode="0644", privatekey_mode="0600", owner=None, group=None):
        self.writer = writer
        self.mode = mode
        self.privatekey_mode = privatekey_mode
        self.owner = owner
        self.group = group

    def write(self, path, content, rewrite=True):
        """Write ``content`` to ``path``; with ``rewrite`` false, keep the file and apply only its attributes."""
        if rewrite:
            self.writer.write(path, content, self.mode, owner=self.owner, group=self.group)
        else:
            self.keep(path)

    def keep(self, path):
        """A certificate, chain, CSR or CRL kept as it is: only its attributes are applied."""
        self.writer.attributes(path, self.mode, self.owner, self.group)

    def write_private(self, path, content, secret=True):
        """A key or passphrase: its mode set before any byte lands, never shown in a diff."""
        self.writer.write(path, content, self.privatekey_mode, secret=secret, owner=self.owner, group=self.group)

    def keep_private(self, path):
        self.writer.attributes(path, self.privatekey_mode, self.owner, self.group)

    @property
    def check_mode(self):
        return self.writer.module.check_mode


class Signer:
    """A signing CA read from its files: ``cert`` and ``key``, and ``bundle``, the CA first,
    then its own chain as its certificate file holds it."""

    def __init__(self, path, cert, key, bundle):
        self.path = path
        self.cert = cert
        self.key = key
        self.bundle = bundle

    def sign(self, subject, public_key, valid_days, extensions):
        return build_certificate(subject, self.cert.subject, public_key, self.key, valid_days, extensions)

    def chain_pem(self, cert):
        """``cert``, then its intermediates; a self-signed root stays out, peers bring their own."""
        return certificate_pem(cert) + b"".join(certificate_pem(c) for c in self.bundle if not is_self_signed(c))


class SignerFiles:
    """The files of a signing CA, named by the option ``option`` (ca_path, parent_path); its
    key is the file ``privatekey_path``, or with ``pkcs11`` (the options of ``pkcs11_option``:
    module_path, token_label, pin, key_label) a key that stays in a PKCS#11 token."""

    def __init__(self, path, privatekey_path, passphrase=None, option="ca_path", pkcs11=None,
                 pkcs11_option="ca_privatekey_pkcs11"):
        self.path = path
        self.privatekey_path = privatekey_path
        self.passphrase = passphrase
        self.option = option
        self.pkcs11 = pkcs11
        self.pkcs11_option = pkcs11_option

    def load(self):
        """Read and cross-check the CA: its certificate file (the CA first, then optionally its
        own chain) and its key, as a :class:`Signer`. Every problem names its file."""
        data = read_file(self.path)
        if data is None:
            raise PKIError("%s: CA certificate not found (%s)" % (self.path, self.option))
        bundle = load_certificates(data, self.path)
        ca_cert = bundle[0]
        if not is_ca(ca_cert):
            raise PKIError("%s: not a CA certificate (basicConstraints CA:TRUE missing)" % self.path)
        if self.pkcs11:
            # The key is never made here: a signing CA's key is the one its certificate holds.
            ca_key = token_signing_key(self.pkcs11, self.pkcs11_option)
            if not same_public_key(ca_cert.public_key(), ca_key.public_key()):
                raise PKIError("%s: private key does not belong to CA certificate %s" % (ca_key.name, self.path))
            return Signer(self.path, ca_cert, ca_key, bundle)
        key_data = read_file(self.privatekey_path)
        if key_data is None:
            raise PKIError("%s: CA private key not found" % self.privatekey_path)
        ca_key = load_private_key(key_data, self.privatekey_path, self.passphrase)
        if not same_public_key(ca_cert.public_key(), ca_key.public_key()):
            raise PKIError("%s: private key does not belong to CA certificate %s" % (self.privatekey_path, self.path))
        return Signer(self.path, ca_cert, ca_key, bundle)


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


class KeyFile:
    """A private key file as a task asks for it; :meth:`ensure` reads (or generates) the key."""

    def __init__(self, path, passphrase=None, key_type="ecdsa-p256"):
        self.path = path
        self.passphrase = passphrase
        self.key_type = key_type

    def ensure(self, reasons):
        """The key, loaded when it fits, else generated; ``save`` it once every input is read."""
        return _Key(self.path, self.key_type, self.passphrase, reasons)


def token_signing_key(options, option, create=None):
    """The key in a PKCS#11 token that the dict ``options`` (module_path, token_label, pin,
    key_label) of the option ``option`` names, as a :class:`_pkcs11.TokenSigningKey` whose
    problems are PKIErrors; with ``create`` (a key type), made in the token when it is missing."""
    from ._pkcs11 import TokenSigningKey

    options = options or {}
    missing = [name for name in ("module_path", "token_label", "key_label") if not options.get(name)]
    if missing:
        raise PKIError("%s: %s missing" % (option, ", ".join(missing)))
    return TokenSigningKey(options["module_path"], options["token_label"], options.get("pin") or "",
                           options["key_label"], option, PKIError, create)


class TokenKeyFile:
    """A CA's private key in a PKCS#11 token (privatekey_pkcs11), where :class:`KeyFile` is a
    file: looked up in the token and, when missing, made there (never in check mode) once the
    certificate needs its public key. Nothing of it is ever written to a file."""

    def __init__(self, options, key_type="ecdsa-p256", check_mode=False, option="privatekey_pkcs11"):
        from ._pkcs11 import TOKEN_KEY_TYPES

        self.key_type = key_type or "ecdsa-p256"
        if self.key_type not in TOKEN_KEY_TYPES:
            raise PKIError("key_type %s: a PKCS#11 token makes %s keys only" % (self.key_type, ", ".join(TOKEN_KEY_TYPES)))
        self.check_mode = check_mode
        self.signer = token_signing_key(options, option, create=self.key_type)
        # Named in messages where a key file's path would be.
        self.path = self.signer.name

    def ensure(self, reasons):
        return _TokenKey(self, reasons)


class _TokenKey:
    """The key of a :class:`TokenKeyFile`, as :class:`_Key` is a key file's: ``key`` signs
    (in the token), ``new`` when the token has none yet."""

    rekeyed = None

    def __init__(self, key_file, reasons):
        signer = key_file.signer
        self.path = key_file.path
        public_key = signer.lookup()
        self.new = public_key is None
        self.key = signer
        if public_key is None:
            reasons.append("no key labelled %r in PKCS#11 token %r" % (signer.key_label, signer.token_label))
            if key_file.check_mode:
                # Nothing is made in the token in check mode: a throwaway key shows what would be signed.
                self.key = generate_private_key(key_file.key_type)
        elif key_type_of(public_key) != key_file.key_type:
            found = key_type_of(public_key)
            raise PKIError("%s: the key is %s, key_type asks %s; a key in a token is never replaced: give key_type %s "
                           "or another key_label" % (self.path, found, key_file.key_type, found))

    def save(self, files):
        """Nothing to write: the key stays in the token."""


class Revocations:
    """What a CA's CRL is to list: serial numbers, and the certificates of ``certificate_paths``."""

    def __init__(self, serials=None, certificate_paths=None):
        self.serials = serials or []
        self.certificate_paths = certificate_paths or []

    def read(self):
        """(serials, [(path, certificate)]): every input parsed, before the CA key is read."""
        return [_parse_serial(s) for s in self.serials], [(p, self._load(p)) for p in self.certificate_paths]

    @staticmethod
    def _load(path):
        data = read_file(path)
        if data is None:
            raise PKIError("%s: certificate to revoke not found (revoked_certificates)" % path)
        return load_certificates(data, path)[0]

    @staticmethod
    def serials_of(revoked, subject, key):
        """Every serial to revoke; a certificate this CA did not issue is an error."""
        serials, certificates = revoked
        for path, cert in certificates:
            if cert.issuer != subject or key.new or not signed_by(cert, key.key.public_key()):
                raise PKIError("%s: not issued by this CA (%s), so this CA cannot revoke it"
                               % (path, subject.rfc4514_string()))
        return set(serials + [cert.serial_number for _path, cert in certificates])


class CrlFile:
    """A CA's CRL at ``path``: made again when it is missing, lists other serials, or its next
    update is within ``renew_before_days`` (or further away than ``valid_days``)."""

    def __init__(self, path, valid_days=7, renew_before_days=2):
        _check_validity(valid_days, renew_before_days, prefix="crl_")
        self.path = path
        self.valid_days = valid_days
        self.renew_before_days = renew_before_days

    def ensure(self, files, ca_cert, ca_key, revoked_serials, reasons):
        number, why = 0, []
        existing, missing = _load_owned(self.path, load_crl, "CRL")
        if missing:
            why.append(missing)
        dates = {}
        if existing is not None:
            number = crl_number_of(existing)
            dates = revoked_of(existing)
            why.extend(self._drift(existing, ca_cert, dates, revoked_serials))
        crl = existing
        if why:
            now = utcnow()
            # A serial keeps the revocation date it was first listed with.
            revoked = dict((serial, dates.get(serial, now)) for serial in revoked_serials)
            crl = build_crl(ca_cert, ca_key, revoked, number + 1, self.valid_days)
            reasons.extend(why)
        files.write(self.path, crl_pem(crl), bool(why))
        next_update = crl_next_update(crl)
        return {
            "path": self.path,
            "last_update": crl_last_update(crl).isoformat(),
            "next_update": next_update.isoformat(),
            "days_remaining": (next_update - utcnow()).days,
            "crl_number": crl_number_of(crl),
            "revoked_serials": _serials(revoked_of(crl)),
        }

    def _drift(self, existing, ca_cert, dates, revoked_serials):
        next_update = crl_next_update(existing)
        left = next_update - utcnow() if next_update is not None else None
        if not crl_signed_by(existing, ca_cert):
            return ["CRL was not signed by this CA"]
        if set(dates) != revoked_serials:
            return ["CRL revokes %s, %s were asked" % (_serials(dates), _serials(revoked_serials))]
        if left is None:
            return ["CRL has no next update time"]
        if left < datetime.timedelta(days=self.renew_before_days):
            return ["CRL next update %s is within crl_renew_before_days=%d"
                    % (next_update.isoformat(), self.renew_before_days)]
        if left > datetime.timedelta(days=self.valid_days, hours=1):
            return ["CRL next update %s is further away than crl_valid_days=%d"
                    % (next_update.isoformat(), self.valid_days)]
        return []


class CertificateAuthority:
    """A root (self-signed) or intermediate (signed by a parent) CA, and optionally its CRL.

    The options are mtls.nginx.ca's; each concern takes its own: the key file, the parent's
    files, what to revoke, the CRL file, and how files are written."""

    def __init__(self, writer, path, privatekey_path, common_name, key_type="ecdsa-p256",
                 valid_days=3650, renew_before_days=90, path_length=None, privatekey_passphrase=None,
                 parent_path=None, parent_privatekey_path=None, parent_privatekey_passphrase=None,
                 chain_path=None, crl_path=None, revoked_serials=None, revoked_certificates=None,
                 crl_valid_days=7, crl_renew_before_days=2,
                 mode="0644", privatekey_mode="0600", owner=None, group=None,
                 ledger_path=None, lock_timeout=300.0, lock_holder="",
                 privatekey_pkcs11=None, parent_privatekey_pkcs11=None):
        _check_validity(valid_days, renew_before_days)
        self.crl = CrlFile(crl_path, crl_valid_days, crl_renew_before_days) if crl_path else None
        if bool(privatekey_path) == bool(privatekey_pkcs11):
            raise PKIError("give the CA's key as privatekey_path (a file) or as privatekey_pkcs11 (a key in a "
                           "PKCS#11 token), %s" % ("not both" if privatekey_path else "one of them"))
        if parent_privatekey_path and parent_privatekey_pkcs11:
            raise PKIError("give the parent CA's key as parent_privatekey_path or as parent_privatekey_pkcs11, not both")
        if bool(parent_path) != bool(parent_privatekey_path or parent_privatekey_pkcs11):
            raise PKIError("parent_path and parent_privatekey_path go together: an intermediate CA needs both "
                           "(or parent_path and parent_privatekey_pkcs11, the parent's key in a PKCS#11 token)")
        if path_length is not None and path_length < 0:
            raise PKIError("path_length must be 0 or more, not %d" % path_length)
        self.files = Files(writer, mode, privatekey_mode, owner, group)
        if privatekey_pkcs11:
            self.key_file = TokenKeyFile(privatekey_pkcs11, key_type, self.files.check_mode)
        else:
            self.key_file = KeyFile(privatekey_path, privatekey_passphrase, key_type)
        self.parent = (SignerFiles(parent_path, parent_privatekey_path, parent_privatekey_passphrase, "parent_path",
                                   parent_privatekey_pkcs11, "parent_privatekey_pkcs11")
                       if parent_path else None)
        self.revocations = Revocations(revoked_serials, revoked_certificates)
        self.ledger_path = ledger_path
        self.lock = (lock_timeout, lock_holder)
        self.path = path
        self.chain_path = chain_path
        self.common_name = common_name
        self.valid_days = valid_days
        self.renew_before_days = renew_before_days
        self.path_length = path_length

    def ensure(self):
        """The CA and its CRL, under the lock of the CA's directory: a CRL number is never used
        twice and a revocation recorded meanwhile is never lost."""
        from ._ledger import locked

        with locked(_dirname(self.path), self.lock[1] or "ca", self.lock[0], self.files.check_mode):
            return self._ensure()

    def _ensure(self):
        # Every input is read and checked before anything is written.
        parent = None
        if self.parent:
            parent = self.parent.load()
            self._check_parent_allows(parent.cert)
        revoked = self.revocations.read()

        reasons = []
        key = self.key_file.ensure(reasons)
        subject = name_from_cn(self.common_name)
        revoked_serials = Revocations.serials_of(revoked, subject, key)
        if self.ledger_path:
            from ._ledger import Ledger

            # What the CA revoked itself (mtls.nginx.ledger): every CRL of every generation lists it.
            revoked_serials |= {_parse_serial(serial) for serial in Ledger(self.ledger_path).revoked_serials()}

        cert = _load_existing_cert(self.path)
        if cert is None:
            reasons.append("no readable CA certificate at %s" % self.path)
        elif not key.new:
            reasons.extend(self._drift(cert, key.key, parent))
        if reasons:
            cert = self._sign(subject, key, cert, parent)

        key.save(self.files)
        self.files.write(self.path, certificate_pem(cert), bool(reasons))
        if self.chain_path:
            self.files.write(self.chain_path,
                             certificate_pem(cert) + b"".join(certificate_pem(c) for c in (parent.bundle if parent else [])))
        result = {"reasons": reasons, "certificate": describe(cert)}
        if self.crl:
            result["crl"] = self.crl.ensure(self.files, cert, key.key, revoked_serials, result["reasons"])
        return result

    def _sign(self, subject, key, old, parent):
        """Re-signing with the same key, subject and key identifier keeps every issued leaf
        valid: their authority key identifier names this CA's subject key identifier."""
        public_key = key.key.public_key()
        key_id = None
        if old is not None and not key.new and same_public_key(old.public_key(), public_key):
            key_id = key_identifier_of(old)
        extensions = ca_extensions(public_key, self.path_length, parent.cert if parent else None, key_id)
        if parent:
            return parent.sign(subject, public_key, self.valid_days, extensions)
        return build_certificate(subject, subject, public_key, key.key, self.valid_days, extensions)

    def _check_parent_allows(self, parent_cert):
        limit = path_length_of(parent_cert)
        if limit == 0:
            raise PKIError("%s: the parent CA has path length 0 and may not sign another CA" % self.parent.path)
        if limit is not None and (self.path_length is None or self.path_length >= limit):
            raise PKIError("path_length: the parent CA in %s allows %d CA(s) below it, so this intermediate's "
                           "path_length must be at most %d, not %s"
                           % (self.parent.path, limit, limit - 1, "unlimited" if self.path_length is None else self.path_length))

    def _drift(self, cert, key, parent):
        found = []
        if not same_public_key(cert.public_key(), key.public_key()):
            found.append("CA certificate does not belong to %s" % self.key_file.path)
        if not is_ca(cert):
            found.append("%s is not a CA certificate" % self.path)
        if common_name_of(cert) != self.common_name:
            found.append("common name is %r, %r was asked" % (common_name_of(cert), self.common_name))
        if parent and not issued_by(cert, parent.cert):
            found.append("CA certificate was not signed by the parent CA in %s" % parent.path)
        if not parent and not is_self_signed(cert):
            found.append("CA certificate is not self-signed, a root CA was asked")
        if path_length_of(cert) != self.path_length:
            found.append("path length is %s, %s was asked" % (path_length_of(cert), self.path_length))
        expiry = _expiry_reason(cert, self.renew_before_days)
        if expiry:
            found.append(expiry)
        return found


def _serials(serials):
    return [format(s, "X") for s in sorted(serials)]


# --- leaf certificates: what is asked, the host key, and the four operations ---------------------

class LeafSpec:
    """What ``operation`` asks of a server or client certificate: its purpose and, for every
    operation but ``install``, its names and validity (checked before any file is read)."""

    def __init__(self, purpose, operation="issue", common_name=None, subject_alt_names=(), valid_days=365,
                 renew_before_days=30):
        if purpose not in LEAF_PURPOSES:
            raise PKIError("purpose must be %s, not %r" % (" or ".join(LEAF_PURPOSES), purpose))
        if operation != "install":
            _check_validity(valid_days, renew_before_days)
            if not common_name:
                raise PKIError("common_name is required to %s a certificate" % operation)
        self.purpose = purpose
        self.common_name = common_name
        self.sans = [parse_san(entry) for entry in subject_alt_names or ()]
        self.valid_days = valid_days
        self.renew_before_days = renew_before_days

    def drift(self, cert, public_key, key_label, signer=None):
        """Why ``cert`` no longer fits: another key, another CA (with ``signer``), other names,
        purpose, or its expiry within renew_before_days. Empty when it fits."""
        found = []
        if not same_public_key(cert.public_key(), public_key):
            found.append("certificate does not belong to %s" % key_label)
        if signer is not None and not issued_by(cert, signer.cert):
            found.append("certificate was not signed by the CA in %s" % signer.path)
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

    def csr_drift(self, csr, key, key_label):
        found = []
        if not same_public_key(csr.public_key(), key.public_key()):
            found.append("CSR does not belong to %s" % key_label)
        if csr.subject != name_from_cn(self.common_name):
            found.append("CSR subject is %s, CN=%s was asked" % (csr.subject.rfc4514_string(), self.common_name))
        if sorted(sans_of(csr)) != sorted(san_strings(self.sans)):
            found.append("CSR subject alt names are %s, %s were asked"
                         % (sorted(sans_of(csr)), sorted(san_strings(self.sans))))
        if purposes_of(csr) != [self.purpose]:
            found.append("CSR purpose is %s, %s was asked" % (purposes_of(csr) or "unset", self.purpose))
        return found

    def sign(self, public_key, signer):
        return signer.sign(name_from_cn(self.common_name), public_key, self.valid_days,
                           leaf_extensions(public_key, signer.cert, self.purpose, self.sans))

    def csr(self, key):
        return build_csr(key, name_from_cn(self.common_name), self.purpose, self.sans)


class HostKeyFile(KeyFile):
    """The private key of a leaf on the host that uses it, and nginx's password file for it."""

    def __init__(self, path, passphrase=None, key_type="ecdsa-p256", passphrase_file=None):
        super().__init__(path, passphrase, key_type)
        self.passphrase_file = passphrase_file

    def ensure(self, reasons):
        return _HostKey(self.path, self.key_type, self.passphrase, reasons, self.passphrase_file)

    def open(self, check_mode):
        """The existing key as it opens now, or None when there is none. Outside check mode it
        must already be encrypted with the passphrase asked (the request step re-encrypts it)."""
        data = read_file(self.path)
        if data is None:
            if check_mode:
                return None
            raise PKIError("%s: private key not found; install puts a certificate next to its key" % self.path)
        key, used = _open_host_key(data, self.path, self.passphrase, self.passphrase_file)
        if used != (to_passphrase(self.passphrase) or None) and not check_mode:
            # Only check mode may find the key before the request task re-encrypts it.
            raise PKIError("%s: the private key is not encrypted with privatekey_passphrase yet; "
                           "operation=request re-encrypts it" % self.path)
        return key


class TokenPublicKey:
    """In place of a key file, for install: the public half of a key that stays in a token
    (mtls.nginx.pkcs11_key), which the certificate must belong to."""

    path = "the token's key"

    def __init__(self, public_key_pem):
        from cryptography.hazmat.primitives import serialization

        try:
            self.key = serialization.load_pem_public_key(_to_bytes(public_key_pem))
        except ValueError as exc:
            raise PKIError("public_key_content: not a PEM public key: %s" % exc)

    def open(self, check_mode):
        return self

    def public_key(self):
        return self.key


def _write_leaf(files, cert, rewrite, path, chain_path=None, chain_pem=None):
    files.write(path, certificate_pem(cert), rewrite)
    if chain_path:
        files.write(chain_path, chain_pem)


def issue(spec, key_file, signer, files, path, chain_path=None):
    """Key and certificate here, signed by ``signer``; either is made again only when it no longer fits."""
    reasons = []
    key = key_file.ensure(reasons)
    cert = _load_existing_cert(path)
    if cert is None:
        reasons.append("no readable certificate at %s" % path)
    elif not key.new:
        reasons.extend(spec.drift(cert, key.key.public_key(), key_file.path, signer))
    if reasons:
        cert = spec.sign(key.key.public_key(), signer)
    key.save(files)
    _write_leaf(files, cert, bool(reasons), path, chain_path, signer.chain_pem(cert))
    return {"reasons": reasons + ([key.rekeyed] if key.rekeyed else []), "certificate": describe(cert)}


def request(spec, key_file, files, path=None, csr_path=None, chain_path=None, ca_content=None):
    """The key (and, with ``csr_path``, a CSR file) on the host; returns the CSR and the
    certificate now at ``path``, which ``sign`` keeps when it still fits.

    With ``ca_content`` (the signing CA's certificate and chain, public), also whether the
    certificate at ``path`` and the chain at ``chain_path`` are exactly what ``sign`` would keep
    and ``install`` would write, so that a run can leave both out."""
    reasons = []
    key = key_file.ensure(reasons)
    csr = None
    if csr_path:
        csr, missing = _load_owned(csr_path, load_csr, "CSR")
        if missing:
            reasons.append(missing)
        elif not key.new:
            reasons.extend(spec.csr_drift(csr, key.key, key_file.path))
    if csr is None or reasons:
        csr = spec.csr(key.key)
    key.save(files)
    if csr_path:
        files.write(csr_path, csr_pem(csr), bool(reasons))
    # A new passphrase alone leaves the CSR and the certificate as they are.
    reasons += [key.rekeyed] if key.rekeyed else []
    result = {"reasons": reasons, "csr": csr_pem(csr).decode("ascii"), "existing_certificate": None,
              "certificate": None}
    existing = _load_existing_cert(path) if path else None
    if existing is not None:
        result["existing_certificate"] = certificate_pem(existing).decode("ascii")
        result["certificate"] = describe(existing)
        result["certificate_reasons"] = spec.drift(existing, key.key.public_key(), key_file.path)
    if ca_content is not None:
        result["certificate_current"] = existing is not None and _installed_as_signed(
            spec, existing, key.key.public_key(), key_file.path, _issuer(ca_content), files, path, chain_path)
    return result


def _issuer(ca_content):
    """The signing CA as ``ca_content`` shows it: its certificate, then its own chain."""
    bundle = load_certificates(_to_bytes(ca_content), "ca_content")
    if not is_ca(bundle[0]):
        raise PKIError("ca_content: not a CA certificate (basicConstraints CA:TRUE missing)")
    return Signer("ca_content", bundle[0], None, bundle)


def _installed_as_signed(spec, cert, public_key, key_label, issuer, files, path, chain_path):
    """True when ``sign`` would keep ``cert`` (it fits the key, the names, the purpose, the
    expiry margin and ``issuer``) and ``install`` would write nothing new at ``path`` and
    ``chain_path``; the files' owner, group and mode are then applied here, as install would."""
    if spec.drift(cert, public_key, key_label, issuer):
        return False
    if read_file(path) != certificate_pem(cert):
        return False
    if chain_path and read_file(chain_path) != issuer.chain_pem(cert):
        return False
    for installed in [path] + ([chain_path] if chain_path else []):
        files.keep(installed)
    return True


def load_request(csr_content=None, csr_path=None):
    """The CSR to sign, from ``csr_content`` or else the file ``csr_path``."""
    if csr_content:
        return load_csr(csr_content if isinstance(csr_content, bytes) else csr_content.encode("ascii"), "csr_content")
    data = read_file(csr_path)
    if data is None:
        raise PKIError("%s: CSR not found (csr_path)" % csr_path)
    return load_csr(data, csr_path)


def sign(spec, signer, csr, files, certificate_content=None, path=None, chain_path=None, ledger=None,
         issued_to=None):
    """Sign ``csr`` with ``signer``, unless the current certificate (``certificate_content``,
    or the file at ``path``) still fits; with ``path``, the result is written there too.

    Only the public key comes from the request (its signature proves the requester holds the
    key); subject, names and purpose are what ``spec`` asks, never what the CSR asks.

    With ``ledger`` (a :class:`_ledger.Ledger`), a key that belongs to a revoked certificate is
    refused before anything is signed, and the certificate is recorded for ``issued_to`` (host,
    tier, service), also one kept because it still fits, when the ledger does not know it yet."""
    issued_to = issued_to or {}
    reasons = []
    cert = None
    if certificate_content:
        cert = load_certificates(_to_bytes(certificate_content), "certificate_content")[0]
        reasons.extend(spec.drift(cert, csr.public_key(), "the CSR's key", signer))
    elif path:
        cert = _load_existing_cert(path)
        if cert is None:
            reasons.append("no readable certificate at %s" % path)
        else:
            reasons.extend(spec.drift(cert, csr.public_key(), "the CSR's key", signer))
    else:
        reasons.append("no current certificate given")
    if reasons and ledger is not None:
        ledger.refuse_revoked_key(csr.public_key(), " ".join(
            part for part in (issued_to.get("tier"), "on " + issued_to["host"] if issued_to.get("host") else "") if part))
    if reasons:
        cert = spec.sign(csr.public_key(), signer)
    if ledger is not None and issued_by(cert, signer.cert):
        ledger.record(cert, issued_to.get("host", ""), issued_to.get("tier", ""), issued_to.get("service", ""))
        ledger.save(files.writer)
    chain = signer.chain_pem(cert)
    if path:
        _write_leaf(files, cert, bool(reasons), path, chain_path, chain)
    return {"reasons": reasons, "certificate": describe(cert),
            "certificate_pem": certificate_pem(cert).decode("ascii"), "chain_pem": chain.decode("ascii"),
            "signed": bool(reasons)}


def install(purpose, key_file, files, certificate_content, path, chain_path=None, ca_path=None):
    """Write ``certificate_content`` (the leaf, then its intermediates) to ``path`` once it is
    known to belong to the key, fit ``purpose``, be current and in order and, with
    ``ca_path``, chain to that CA."""
    certs = load_certificates(_to_bytes(certificate_content), "certificate_content")
    leaf = certs[0]
    key = key_file.open(files.check_mode)
    if key is None:
        # In check mode the request step only pretended to make the key.
        files.writer.changed = True
        return {"reasons": ["no private key at %s yet; the certificate would be installed next to it"
                            % key_file.path], "certificate": describe(leaf)}
    problems = []
    if not same_public_key(leaf.public_key(), key.public_key()):
        problems.append("the certificate (%s) does not belong to the private key in %s"
                        % (leaf.subject.rfc4514_string(), key_file.path))
    if purpose not in purposes_of(leaf):
        problems.append("the certificate's extended key usage allows %s, not %s"
                        % (purposes_of(leaf) or "nothing", purpose))
    if not_after(leaf) <= utcnow():
        problems.append("the certificate expired on %s" % not_after(leaf).isoformat())
    for child, parent in zip(certs, certs[1:]):
        if not issued_by(child, parent):
            problems.append("the chain is out of order: %s was not issued by the next certificate, %s"
                            % (child.subject.rfc4514_string(), parent.subject.rfc4514_string()))
    if ca_path:
        problems.extend(_anchor_problems(certs, ca_path))
    if problems:
        raise PKIError("certificate_content: refusing to install it at %s: %s" % (path, "; ".join(problems)))
    existing = _load_existing_cert(path)
    rewrite = existing is None or certificate_pem(existing) != certificate_pem(leaf)
    _write_leaf(files, leaf, rewrite, path, chain_path, b"".join(certificate_pem(c) for c in certs))
    return {"reasons": ["certificate at %s differs" % path] if rewrite else [], "certificate": describe(leaf)}


def _anchor_problems(certs, ca_path):
    data = read_file(ca_path)
    if data is None:
        return ["%s: CA certificate not found (ca_path)" % ca_path]
    anchors = load_certificates(data, ca_path)
    top = certs[-1]
    if any(certificate_pem(top) == certificate_pem(a) for a in anchors) or any(issued_by(top, a) for a in anchors):
        return []
    return ["the certificate does not chain to a CA in %s" % ca_path]


def _to_bytes(value):
    return value if isinstance(value, bytes) else value.encode("utf-8")


# mtls.nginx.certificate's options by the piece of an operation that takes them.
_SPEC_OPTIONS = ("common_name", "subject_alt_names", "valid_days", "renew_before_days")
_FILES_OPTIONS = ("mode", "privatekey_mode", "owner", "group")
_OTHER_OPTIONS = ("privatekey_path", "privatekey_passphrase", "privatekey_passphrase_file", "key_type",
                  "ca_path", "ca_privatekey_path", "ca_privatekey_passphrase", "ca_privatekey_pkcs11",
                  "path", "chain_path", "csr_path", "csr_content", "certificate_content", "public_key_content",
                  "ca_content", "ledger_path", "lock_timeout", "lock_holder", "issued_to")


def ensure_leaf(writer, purpose, operation="issue", **options):
    """Run one operation of mtls.nginx.certificate from the module's options: what is asked,
    the host key, the signing CA and the files are built here, each from its own options, and
    the operation takes only the pieces it needs."""
    if operation not in OPERATIONS:
        raise PKIError("operation must be one of %s, not %r" % (", ".join(OPERATIONS), operation))
    unknown = sorted(set(options).difference(_SPEC_OPTIONS + _FILES_OPTIONS + _OTHER_OPTIONS))
    if unknown:
        raise TypeError("ensure_leaf() got unexpected options: %s" % ", ".join(unknown))
    option = options.get
    spec = LeafSpec(purpose, operation, **dict((k, options[k]) for k in _SPEC_OPTIONS if k in options))
    files = Files(writer, **dict((k, options[k]) for k in _FILES_OPTIONS if k in options))
    key_file = HostKeyFile(option("privatekey_path"), option("privatekey_passphrase"),
                           option("key_type", "ecdsa-p256"), option("privatekey_passphrase_file"))
    if operation == "install" and option("public_key_content"):
        key_file = TokenPublicKey(option("public_key_content"))
    if operation == "install":
        return install(purpose, key_file, files, option("certificate_content"), option("path"), option("chain_path"),
                       option("ca_path"))
    if operation == "request":
        return request(spec, key_file, files, option("path"), option("csr_path"), option("chain_path"),
                       option("ca_content"))
    # Read the signer first: a broken CA must fail before any file is touched.
    if option("ca_privatekey_path") and option("ca_privatekey_pkcs11"):
        raise PKIError("give the CA's key as ca_privatekey_path or as ca_privatekey_pkcs11, not both")
    signer = SignerFiles(option("ca_path"), option("ca_privatekey_path"), option("ca_privatekey_passphrase"),
                         pkcs11=option("ca_privatekey_pkcs11")).load()
    if operation == "issue":
        return issue(spec, key_file, signer, files, option("path"), option("chain_path"))
    csr = load_request(option("csr_content"), option("csr_path"))
    if not option("ledger_path"):
        return sign(spec, signer, csr, files, option("certificate_content"), option("path"), option("chain_path"))
    from ._ledger import Ledger, locked

    # The signature and its record in the ledger are one step, under the CA directory's lock.
    with locked(_dirname(option("ledger_path")), option("lock_holder") or "sign", option("lock_timeout", 300.0),
                files.check_mode):
        ledger = Ledger(option("ledger_path"))
        return sign(spec, signer, csr, files, option("certificate_content"), option("path"), option("chain_path"),
                    ledger, option("issued_to"))


def _dirname(path):
    import os

    return os.path.dirname(os.path.abspath(os.path.expanduser(path)))
