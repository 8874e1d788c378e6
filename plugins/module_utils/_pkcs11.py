# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A private key that lives in a PKCS#11 token (an HSM, or SoftHSM2 for tests).

The token is reached through its PKCS#11 module library with PyKCS11 (Debian's
``python3-pykcs11``), imported only when a token is opened, so that this file imports without
it: the library loads, the token with the label asked is present, the PIN logs in, the key is
there. Keys are made inside the token (EC P-256, sensitive and never extractable); only their
public half ever comes out. The CSR is signed by the token through OpenSSL's pkcs11 engine
(``openssl req -engine pkcs11``), the same engine nginx loads the key with, so a CSR that is
made proves that nginx's OpenSSL can use the key.

Every operation can run as another user (nginx's worker user), in a child process, because the
workers are the ones that use the key during handshakes: what works here works for them.

A CA's key can live in a token too (:class:`TokenSigningKey`): it signs the bytes a certificate
or a CRL is made of inside the token, and ``_crypto`` puts the signed object together.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

# The PKCS#11 numbers used here (PyKCS11 takes them as they are).
CKR_OK = 0
CKR_USER_ALREADY_LOGGED_IN = 0x100
CKF_RW_SESSION = 0x2
CKF_TOKEN_INITIALIZED = 0x400
CKF_USER_PIN_LOCKED = 0x40000
CKU_USER = 1
CKO_PUBLIC_KEY = 2
CKO_PRIVATE_KEY = 3
CKK_RSA = 0
CKK_EC = 3
CKM_RSA_PKCS_KEY_PAIR_GEN = 0x0
CKM_RSA_PKCS = 0x1
CKM_EC_KEY_PAIR_GEN = 0x1040
CKM_ECDSA = 0x1041
CKA_CLASS = 0x0
CKA_TOKEN = 0x1
CKA_PRIVATE = 0x2
CKA_LABEL = 0x3
CKA_KEY_TYPE = 0x100
CKA_ID = 0x102
CKA_SENSITIVE = 0x103
CKA_SIGN = 0x108
CKA_VERIFY = 0x10A
CKA_MODULUS = 0x120
CKA_MODULUS_BITS = 0x121
CKA_PUBLIC_EXPONENT = 0x122
CKA_EXTRACTABLE = 0x162
CKA_NEVER_EXTRACTABLE = 0x164
CKA_ALWAYS_SENSITIVE = 0x165
CKA_EC_PARAMS = 0x180
CKA_EC_POINT = 0x181
# DER of the OID of prime256v1 (P-256), the only curve the keys of the tiers are made on:
# OpenSSL 3's pkcs11 engine signs CSRs with EC keys, not with RSA ones. A CA's key may also be
# made on P-384, or be RSA.
P256_PARAMS = bytes.fromhex("06082a8648ce3d030107")
P384_PARAMS = bytes.fromhex("06052b81040022")
EC_KEY_TYPES = {P256_PARAMS: "ecdsa-p256", P384_PARAMS: "ecdsa-p384"}
RSA_KEY_TYPES = ("rsa2048", "rsa3072", "rsa4096")
# What a token makes and signs with, by the key_type option's names.
TOKEN_KEY_TYPES = tuple(EC_KEY_TYPES.values()) + RSA_KEY_TYPES
# DigestInfo (RFC 8017, 9.2) before the digest, for CKM_RSA_PKCS.
_DIGEST_INFO = {
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}

# The engine's file name in OpenSSL's engines directory (Debian's libengine-pkcs11-openssl puts
# it there, /usr/lib/<architecture>-linux-gnu/engines-3 for OpenSSL 3).
ENGINE_FILE = "pkcs11.so"
# The Python binding, by the names its packages have.
BINDING_PACKAGES = "python3-pykcs11 on Debian, PyKCS11 from PyPI"


class TokenError(Exception):
    """A problem with the module library, the token, the PIN or the key, worded for the operator."""


def _binding():
    """PyKCS11, or a TokenError that names the package to install."""
    try:
        import PyKCS11
    except ImportError as exc:
        raise TokenError("the Python PKCS#11 binding PyKCS11 is not installed on this host (%s); install it "
                         "(%s)" % (exc, BINDING_PACKAGES))
    return PyKCS11


def binding_installed():
    """Whether PyKCS11 imports here."""
    try:
        _binding()
    except TokenError:
        return False
    return True


def _rv_name(rv):
    """The CKR_* name of a PKCS#11 return value."""
    try:
        from PyKCS11 import CKR
    except ImportError:
        CKR = {}
    return CKR.get(rv) or "CKR 0x%x" % rv


def _error_name(exc):
    """The CKR_* name of a PyKCS11Error."""
    return _rv_name(exc.value) if exc.value >= 0 else str(exc)


def check_library(module_path):
    """The module library is an absolute path, loads, and is a PKCS#11 library.

    Asked of the dynamic linker (ctypes) before PyKCS11 loads it: PyKCS11 prints the linker's
    complaint about a library that does not load on standard output (where an Ansible module's
    answer goes) and only tells that loading failed."""
    if not os.path.isabs(module_path):
        raise TokenError("PKCS#11 module %r: give the absolute path of the library" % module_path)
    if not os.path.exists(module_path):
        raise TokenError("PKCS#11 module %s: no such file (is the HSM's or SoftHSM2's library installed?)"
                         % module_path)
    import ctypes

    try:
        lib = ctypes.CDLL(module_path)
    except OSError as exc:
        raise TokenError("PKCS#11 module %s: cannot load it: %s" % (module_path, exc))
    for name in ("C_Initialize", "C_GetFunctionList"):
        if not hasattr(lib, name):
            raise TokenError("PKCS#11 module %s: not a PKCS#11 library (no %s)" % (module_path, name))


def ec_point_to_public_key(ec_point, params=P256_PARAMS):
    """The public key from CKA_EC_POINT: a DER OCTET STRING around the point, or the bare point."""
    from cryptography.hazmat.primitives.asymmetric import ec

    curve = {P256_PARAMS: ec.SECP256R1, P384_PARAMS: ec.SECP384R1}.get(params)
    if curve is None:
        raise TokenError("the token's EC key is on a curve other than P-256 and P-384 (CKA_EC_PARAMS %s)"
                         % params.hex())
    point = ec_point
    if len(ec_point) > 2 and ec_point[0] == 0x04 and ec_point[1] == len(ec_point) - 2:
        point = ec_point[2:]
    elif len(ec_point) > 3 and ec_point[0] == 0x04 and ec_point[1] == 0x81 and ec_point[2] == len(ec_point) - 3:
        point = ec_point[3:]
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(curve(), point)
    except ValueError as exc:
        raise TokenError("the token's public key is not a %s point: %s"
                         % ("P-256" if params == P256_PARAMS else "P-384", exc))


def public_key_of(found):
    """The public key (cryptography) of a key pair as :meth:`Token.key` describes it."""
    if found["key_type"] in RSA_KEY_TYPES or found.get("modulus"):
        from cryptography.hazmat.primitives.asymmetric import rsa

        return rsa.RSAPublicNumbers(int.from_bytes(found["public_exponent"], "big"),
                                    int.from_bytes(found["modulus"], "big")).public_key()
    return ec_point_to_public_key(found["ec_point"], found.get("ec_params") or P256_PARAMS)


class Token:
    """A logged-in session with one token, found by its label, through ``module_path``."""

    def __init__(self, module_path, token_label, pin):
        self.module_path = module_path
        self.token_label = token_label
        self.session = None
        self.lib = None
        check_library(module_path)
        self.pkcs11 = _binding()
        self.lib = self.pkcs11.PyKCS11Lib()
        try:
            self.lib.load(module_path)
        except self.pkcs11.PyKCS11Error as exc:
            self.close()
            raise TokenError("PKCS#11 module %s: cannot initialise it: %s" % (module_path, _error_name(exc)))
        try:
            self.slot = self._find_slot()
            self.session = self._call("C_OpenSession", self.lib.openSession, self.slot, CKF_RW_SESSION)
            self._login(pin)
        except BaseException:
            self.close()
            raise

    def _login(self, pin):
        try:
            self.session.login(pin or "", CKU_USER)
        except self.pkcs11.PyKCS11Error as exc:
            if exc.value == CKR_USER_ALREADY_LOGGED_IN:
                return
            hint = {0xA0: "wrong PIN", 0xA4: "the PIN is locked", 0xA2: "the PIN has a length the token refuses",
                    0xA1: "the PIN has characters the token refuses"}.get(exc.value, "login refused")
            raise TokenError("PKCS#11 token %r (module %s): %s (%s)"
                             % (self.token_label, self.module_path, hint, _error_name(exc)))

    def _call(self, name, func, *args, **kwargs):
        """``func(*args)``, a PyKCS11 call; its PyKCS11Error as a TokenError naming ``name``."""
        try:
            return func(*args, **kwargs)
        except self.pkcs11.PyKCS11Error as exc:
            raise TokenError("PKCS#11 token %r (module %s): %s failed: %s"
                             % (self.token_label, self.module_path, name, _error_name(exc)))

    def _find_slot(self):
        labels = []
        for slot in self._call("C_GetSlotList", self.lib.getSlotList, tokenPresent=True):
            try:
                info = self.lib.getTokenInfo(slot)
            except self.pkcs11.PyKCS11Error:
                continue
            label = info.label.rstrip(" \x00")
            if not info.flags & CKF_TOKEN_INITIALIZED:
                continue
            if label == self.token_label:
                if info.flags & CKF_USER_PIN_LOCKED:
                    raise TokenError("PKCS#11 token %r (module %s): the user PIN is locked"
                                     % (self.token_label, self.module_path))
                return slot
            labels.append(label)
        raise TokenError("PKCS#11 module %s: no token labelled %r; tokens present: %s"
                         % (self.module_path, self.token_label, ", ".join(repr(x) for x in labels) or "none"))

    def __enter__(self):
        return self

    def __exit__(self, *_exc):
        self.close()

    def close(self):
        """Log out, close the session and finalise the library (a later Token initialises it again)."""
        if self.session is not None:
            for step in (self.session.logout, self.session.closeSession):
                try:
                    step()
                except self.pkcs11.PyKCS11Error:
                    pass
            self.session = None
        if self.lib is not None:
            # PyKCS11 1.5.13 and later count the users of a library and finalise it with the last;
            # 1.5.12 (Debian 12) finalises it when its object goes.
            unload = getattr(self.lib, "unload", None)
            if unload is not None:
                unload()
            else:
                self.lib.lib.Unload()
            self.lib = None

    def find(self, label, object_class, key_id=None):
        """The handles of the objects of ``object_class`` labelled ``label`` (and with the CKA_ID
        ``key_id``, hex, when given)."""
        template = [(CKA_CLASS, object_class), (CKA_LABEL, label)]
        if key_id:
            template.append((CKA_ID, bytes.fromhex(key_id)))
        return self._call("C_FindObjects", self.session.findObjects, template)

    def key_ids(self, label):
        """The CKA_IDs (hex, sorted) of the private keys labelled ``label``: one, except while a
        rotation's new key stands beside the live one under the same label."""
        return sorted((self.attribute(handle, CKA_ID) or b"").hex() for handle in self.find(label, CKO_PRIVATE_KEY))

    def labels(self, object_class=CKO_PRIVATE_KEY):
        """The labels of every object of ``object_class`` in the token, sorted."""
        found = set()
        for handle in self._call("C_FindObjects", self.session.findObjects, [(CKA_CLASS, object_class)]):
            found.add(self.attribute(handle, CKA_LABEL).decode("utf-8", "replace"))
        return sorted(found)

    def attributes(self, handle, kinds):
        """The values of the attributes ``kinds`` of an object, as bytes (None for one it lacks)."""
        values = self._call("C_GetAttributeValue", self.session.getAttributeValue, handle, list(kinds), True)
        return [None if value is None else bytes(value) for value in values]

    def attribute(self, handle, kind):
        return self.attributes(handle, [kind])[0]

    def flag(self, handle, kind):
        return self.attribute(handle, kind) == b"\x01"

    def key(self, label, key_id=None):
        """The key pair labelled ``label`` (with the CKA_ID ``key_id``, hex, when given): None when
        absent, else a dict with its type (the key_type option's name), its public half
        (CKA_EC_PARAMS and CKA_EC_POINT, or CKA_MODULUS and CKA_PUBLIC_EXPONENT), its CKA_ID and
        how the token guards its private half."""
        private = self.find(label, CKO_PRIVATE_KEY, key_id)
        public = self.find(label, CKO_PUBLIC_KEY, key_id)
        if not private and not public:
            return None
        if len(private) != 1 or len(public) != 1:
            raise TokenError("PKCS#11 token %r: label %r%s names %d private and %d public keys, not one of each; "
                             "remove the extra objects or choose another label"
                             % (self.token_label, label, " with CKA_ID %s" % key_id if key_id else "",
                                len(private), len(public)))
        key_id, sensitive, extractable = self.attributes(private[0], [CKA_ID, CKA_SENSITIVE, CKA_EXTRACTABLE])
        kind, params, point = self.attributes(public[0], [CKA_KEY_TYPE, CKA_EC_PARAMS, CKA_EC_POINT])
        found = {"handles": (private[0], public[0]), "id": (key_id or b"").hex(),
                 "sensitive": sensitive == b"\x01", "extractable": extractable == b"\x01"}
        # A CK_ULONG, in the host's byte order.
        if kind is not None and int.from_bytes(kind, sys.byteorder) == CKK_RSA:
            modulus, exponent = self.attributes(public[0], [CKA_MODULUS, CKA_PUBLIC_EXPONENT])
            found.update(key_type="rsa%d" % int.from_bytes(modulus, "big").bit_length(), modulus=modulus,
                         public_exponent=exponent, ec_point=None)
        else:
            found.update(key_type=EC_KEY_TYPES.get(params, "ec"), ec_params=params, ec_point=point)
        return found

    def generate(self, label, key_type="ecdsa-p256"):
        """A new key pair on the token, of ``key_type`` (P-256 unless a CA asks for another):
        the private half sensitive and never extractable."""
        key_id = os.urandom(8)
        public = [(CKA_TOKEN, True), (CKA_LABEL, label), (CKA_ID, key_id), (CKA_VERIFY, True)]
        private = [(CKA_TOKEN, True), (CKA_PRIVATE, True), (CKA_LABEL, label), (CKA_ID, key_id),
                   (CKA_SIGN, True), (CKA_SENSITIVE, True), (CKA_EXTRACTABLE, False)]
        if key_type in RSA_KEY_TYPES:
            public += [(CKA_MODULUS_BITS, int(key_type[3:])), (CKA_PUBLIC_EXPONENT, b"\x01\x00\x01")]
            mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN
        else:
            params = dict((name, params) for params, name in EC_KEY_TYPES.items()).get(key_type)
            if params is None:
                raise TokenError("key type %s cannot be made in a PKCS#11 token; choose one of %s"
                                 % (key_type, ", ".join(TOKEN_KEY_TYPES)))
            public.append((CKA_EC_PARAMS, params))
            mechanism = CKM_EC_KEY_PAIR_GEN
        self._call("C_GenerateKeyPair", self.session.generateKeyPair, public, private,
                   self.pkcs11.Mechanism(mechanism, None))

    def destroy(self, label, key_id=None):
        """Remove both halves of the key pairs labelled ``label`` (only the one with the CKA_ID
        ``key_id``, hex, when given)."""
        handles = self.find(label, CKO_PRIVATE_KEY, key_id) + self.find(label, CKO_PUBLIC_KEY, key_id)
        for handle in handles:
            self._call("C_DestroyObject", self.session.destroyObject, handle)
        return bool(handles)

    def sign(self, label, data, mechanism):
        """The signature the private key ``label`` makes over ``data`` with ``mechanism`` (raw:
        CKM_ECDSA gives r||s, CKM_RSA_PKCS the PKCS#1 v1.5 block over a DigestInfo)."""
        private = self.find(label, CKO_PRIVATE_KEY)
        if len(private) != 1:
            raise TokenError("PKCS#11 token %r: label %r names %d private keys, not one"
                             % (self.token_label, label, len(private)))
        return bytes(self._call("C_Sign", self.session.sign, private[0], data, self.pkcs11.Mechanism(mechanism, None)))


def token_key_argument_spec():
    """The argument spec of an option that names a key in a token (privatekey_pkcs11 of
    mtls.nginx.ca, ca_privatekey_pkcs11 of mtls.nginx.certificate): module_path, token_label,
    pin, key_label. The modules document it with the option."""
    return dict(type="dict", no_log=False, options=dict(
        module_path=dict(type="path", required=True),
        token_label=dict(type="str", required=True, no_log=False),
        pin=dict(type="str", required=True, no_log=True),
        key_label=dict(type="str", required=True, no_log=False),
    ))


class TokenSigningKey:
    """A CA's private key in a PKCS#11 token, where a key file would be: its public half comes
    out (:meth:`public_key`), and it signs inside the token (:meth:`sign_tbs`, which
    ``_crypto`` calls for the bytes a certificate or CRL is made of).

    Every step opens the token, logs in and closes it again, so that no two sessions of one
    library are ever open at once. Problems are raised as ``error`` (the caller's exception
    class), naming ``option``, the key's label and the token. With ``create`` (a key type), a
    missing key pair is made in the token when its public key is first asked for."""

    def __init__(self, module_path, token_label, pin, key_label, option="privatekey_pkcs11", error=TokenError,
                 create=None):
        self.module_path = module_path
        self.token_label = token_label
        self.pin = pin
        self.key_label = key_label
        self.option = option
        self.error = error
        self.create = create
        self.name = "%s (key %r in PKCS#11 token %r)" % (option, key_label, token_label)
        self._public = None
        self._key_type = None
        if not key_label or any(ord(ch) < 0x20 for ch in key_label):
            raise error("%s: key_label %r: give a non-empty label without control characters" % (option, key_label))
        if not token_label:
            raise error("%s: token_label is empty; give the label of the token" % option)

    def _run(self, step, *args):
        token = None
        try:
            token = Token(self.module_path, self.token_label, self.pin)
            return step(token, *args)
        except TokenError as exc:
            raise self.error("%s, key %r: %s" % (self.option, self.key_label, exc))
        finally:
            if token is not None:
                token.close()

    def _lookup(self, token):
        found = token.key(self.key_label)
        if found is None:
            return None, token.labels()
        if found["extractable"] or not found["sensitive"]:
            raise TokenError("PKCS#11 token %r: the private key %r can leave the token (%s); a CA key must not: "
                             "make a new one under another label"
                             % (self.token_label, self.key_label,
                                "extractable" if found["extractable"] else "not sensitive"))
        return found, None

    def lookup(self):
        """The public key, or None when the token has no key pair labelled so."""
        if self._public is None:
            found, _labels = self._run(self._lookup)
            if found is not None:
                self._remember(found)
        return self._public

    def _remember(self, found):
        try:
            self._public = public_key_of(found)
        except TokenError as exc:
            raise self.error("%s: %s" % (self.name, exc))
        self._key_type = found["key_type"]

    def _make(self, token, key_type):
        found, labels = self._lookup(token)
        if found is None:
            token.generate(self.key_label, key_type)
            found, labels = self._lookup(token)
        return found, labels

    def public_key(self):
        """The public key; the key pair is made first when it is missing and ``create`` asks."""
        if self._public is not None:
            return self._public
        found, labels = self._run(self._make, self.create) if self.create else self._run(self._lookup)
        if found is None:
            raise self.error("%s: no key labelled %r in PKCS#11 token %r (module %s); private keys present: %s"
                             % (self.option, self.key_label, self.token_label, self.module_path,
                                ", ".join(repr(x) for x in labels) or "none"))
        self._remember(found)
        return self._public

    @property
    def key_type(self):
        self.public_key()
        return self._key_type

    def sign_tbs(self, data, hash_algorithm):
        """The signature of ``data`` as X.509 carries it: an ECDSA-Sig-Value (DER) for an EC
        key, the PKCS#1 v1.5 signature for an RSA key; ``hash_algorithm`` (cryptography's) is
        the digest the signature algorithm names."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

        digest = hashes.Hash(hash_algorithm)
        digest.update(data)
        digest = digest.finalize()
        if self.key_type in RSA_KEY_TYPES:
            prefix = _DIGEST_INFO.get(hash_algorithm.name)
            if prefix is None:
                raise self.error("%s: cannot sign with %s" % (self.name, hash_algorithm.name))
            return self._run(lambda token: token.sign(self.key_label, prefix + digest, CKM_RSA_PKCS))
        raw = self._run(lambda token: token.sign(self.key_label, digest, CKM_ECDSA))
        if not raw or len(raw) % 2:
            raise self.error("%s: the token returned an ECDSA signature of %d bytes" % (self.name, len(raw)))
        half = len(raw) // 2
        return encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))


def key_uri(token_label, key_label=None, key_id=None):
    """The RFC 7512 URI of the private key, as the pkcs11 engine and nginx take it: by its
    CKA_ID (hex) when given, which tells a rotation's new key from the live one under the same
    label, else by label."""
    from urllib.parse import quote

    if key_id:
        name = "id=" + "".join("%%%s" % key_id[i:i + 2] for i in range(0, len(key_id), 2))
    else:
        name = "object=" + quote(key_label, safe="")
    return "pkcs11:token=%s;%s;type=private" % (quote(token_label, safe=""), name)


def engine_location(engine_path=""):
    """``engine_path``, or when it is empty the pkcs11 engine in the engines directory of the
    host's OpenSSL (``openssl version -e``), whatever the architecture."""
    if engine_path:
        return engine_path
    try:
        proc = subprocess.run(["openssl", "version", "-e"], capture_output=True, check=False)
    except OSError as exc:
        raise TokenError("cannot ask openssl where its engines are (%s); install openssl or give engine_path" % exc)
    found = re.search(r'ENGINESDIR:\s*"([^"]+)"', proc.stdout.decode("utf-8", "replace"))
    if proc.returncode != 0 or not found:
        raise TokenError("openssl version -e names no engines directory (%s); give engine_path"
                         % (_stderr(proc, "") or proc.stdout.decode("utf-8", "replace").strip() or "no output"))
    return os.path.join(found.group(1), ENGINE_FILE)


def engine_config(module_path, pin, engine_path):
    """An OPENSSL_CONF that loads the pkcs11 engine with the module and the PIN (keep it 0600)."""
    for name, value in (("module_path", module_path), ("pin", pin), ("engine_path", engine_path)):
        if any(ch in value for ch in "\n\r\\$\"'#"):
            raise TokenError("%s contains a character an OpenSSL config cannot hold as it is"
                             " (newline, backslash, $, quotes or #)" % name)
    return ("openssl_conf = mtls_nginx_openssl_init\n\n"
            "[mtls_nginx_openssl_init]\nengines = mtls_nginx_engines\n\n"
            "[mtls_nginx_engines]\npkcs11 = mtls_nginx_pkcs11\n\n"
            "[mtls_nginx_pkcs11]\nengine_id = pkcs11\ndynamic_path = %s\nMODULE_PATH = %s\nPIN = %s\ninit = 1\n"
            % (engine_path, module_path, pin))


def _private_file(directory, name, text, run_as):
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    if run_as is not None:
        os.chown(path, run_as[0], run_as[1])
    return path


def _openssl(argv, module_path, pin, engine_path, run_as, files=()):
    """Run ``openssl`` with the pkcs11 engine set up as nginx gets it (OPENSSL_CONF, with the
    library and the PIN, in a private temporary directory), as ``run_as``; ``files`` are more
    (name, text) files for it there. Returns the finished process."""
    workdir = tempfile.mkdtemp(prefix="mtls-nginx-pkcs11-")
    try:
        if run_as is not None:
            os.chown(workdir, run_as[0], run_as[1])
        conf = _private_file(workdir, "openssl.cnf", engine_config(module_path, pin, engine_path), run_as)
        for name, text in files:
            _private_file(workdir, name, text, run_as)
        env = dict(os.environ, OPENSSL_CONF=conf)
        kwargs = {}
        if run_as is not None:
            kwargs = {"user": run_as[0], "group": run_as[1], "extra_groups": list(run_as[2])}
        return subprocess.run(["openssl"] + argv, env=env, cwd=workdir, capture_output=True, check=False, **kwargs)
    except OSError as exc:
        raise TokenError("cannot run openssl with the pkcs11 engine: %s" % exc)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _stderr(proc, pin):
    err = proc.stderr.decode("utf-8", "replace").strip()
    return err.replace(pin, "********") if pin else err


def check_engine(module_path, pin, engine_path, run_as=None):
    """OpenSSL loads the pkcs11 engine with the token's library and PIN, as nginx's master will."""
    if not os.path.exists(engine_path):
        raise TokenError("OpenSSL's pkcs11 engine %s is missing (Debian: libengine-pkcs11-openssl)" % engine_path)
    proc = _openssl(["engine", "-t", "pkcs11"], module_path, pin, engine_path, run_as)
    if proc.returncode != 0 or "[ available ]" not in proc.stdout.decode("utf-8", "replace"):
        raise TokenError("OpenSSL cannot load the pkcs11 engine %s with the module %s: %s"
                         % (engine_path, module_path, _stderr(proc, pin) or "no output"))


def check_nginx(nginx_path):
    """nginx is built with OpenSSL (not BoringSSL or LibreSSL, which have no engines)."""
    if not nginx_path or not os.path.exists(nginx_path):
        return
    proc = subprocess.run([nginx_path, "-V"], capture_output=True, check=False)
    built = [line for line in proc.stderr.decode("utf-8", "replace").splitlines() if line.startswith("built with")]
    if not built or not built[0].startswith("built with OpenSSL"):
        raise TokenError("%s is %s, not with OpenSSL: it cannot load keys through the pkcs11 engine"
                         % (nginx_path, built[0] if built else "built with no TLS library it names"))


def make_csr(module_path, pin, token_label, key_label, common_name, engine_path, run_as=None, key_id=None):
    """A CSR (PEM) for the token's key (by CKA_ID when ``key_id`` is given), signed by the token
    through OpenSSL's pkcs11 engine."""
    if not os.path.exists(engine_path):
        raise TokenError("OpenSSL's pkcs11 engine %s is missing (Debian: libengine-pkcs11-openssl)" % engine_path)
    escaped = common_name.replace("\\", "\\\\").replace("$", "\\$")
    # The engine's config (with the PIN) is OpenSSL's own; the request's is a second file,
    # since a -config that loads the engine again fails to initialise it twice.
    request = "[req]\nprompt = no\ndistinguished_name = mtls_nginx_dn\n\n[mtls_nginx_dn]\nCN = %s\n" % escaped
    proc = _openssl(["req", "-new", "-config", "req.cnf", "-engine", "pkcs11", "-keyform", "engine",
                     "-key", key_uri(token_label, key_label, key_id)], module_path, pin, engine_path, run_as,
                    [("req.cnf", request)])
    out = proc.stdout.decode("ascii", "replace")
    if proc.returncode != 0 or "BEGIN CERTIFICATE REQUEST" not in out:
        raise TokenError("OpenSSL could not sign a CSR with %s through the pkcs11 engine %s: %s"
                         % (key_uri(token_label, key_label, key_id), engine_path, _stderr(proc, pin) or "no output"))
    return out


def run_as_user(user, groups=()):
    """(uid, gid, groups, name) of ``user`` with the extra ``groups`` it will be given, for
    running token operations as nginx's worker user."""
    import grp
    import pwd

    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise TokenError("user %r (nginx's worker user) does not exist on this host" % user)
    gids = os.getgrouplist(user, entry.pw_gid)
    for name in groups or ():
        try:
            gids.append(grp.getgrnam(name).gr_gid)
        except KeyError:
            raise TokenError("group %r, which nginx's worker user %s should join to reach the token, "
                             "does not exist on this host" % (name, user))
    return entry.pw_uid, entry.pw_gid, sorted(set(gids)), user


def _preload():
    """Import here what the child's steps import (ctypes, PyKCS11, cryptography's key classes):
    the user the child runs as may not be able to read them (an interpreter, or the module's
    payload, in root's directories)."""
    import ctypes  # noqa: F401 - imported for the child

    binding_installed()
    try:
        from cryptography.hazmat.primitives import serialization  # noqa: F401 - imported for the child
        from cryptography.hazmat.primitives.asymmetric import ec  # noqa: F401 - imported for the child
    except ImportError:
        pass


def in_child(run_as, func, *args):
    """``func(*args)`` in a child process running as ``run_as`` (uid, gid, groups, name); its
    result (JSON-able) or its TokenError comes back. Without ``run_as``, it runs here."""
    if run_as is None:
        return func(*args)
    _preload()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read_fd)
        try:
            os.setgroups(run_as[2])
            os.setgid(run_as[1])
            os.setuid(run_as[0])
            payload = {"result": func(*args)}
        except TokenError as exc:
            payload = {"error": str(exc)}
        except Exception as exc:  # noqa: BLE001 - everything must reach the parent
            payload = {"error": "%s: %s" % (type(exc).__name__, exc)}
        with os.fdopen(write_fd, "w") as handle:
            handle.write(json.dumps(payload))
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as handle:
        data = handle.read()
    os.waitpid(pid, 0)
    try:
        payload = json.loads(data)
    except ValueError:
        raise TokenError("the token check running as %s ended without an answer" % run_as[3])
    if "error" in payload:
        raise TokenError(payload["error"])
    return payload["result"]


def _spki(public_key):
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _certificate_spki(path):
    """The public key (DER) of the certificate at ``path``, or None when there is none (or no
    cryptography library to read it with, as in a check before the run installs it). Read by
    the module (root), not by the child that runs as nginx's worker user."""
    if not path or not os.path.exists(path):
        return None
    try:
        from ._pki import _load_existing_cert
    except ImportError:
        return None
    cert = _load_existing_cert(path)
    return _spki(cert.public_key()) if cert is not None else None


def _live_key(token, key_label, certificate_spki, required=True):
    """The live key pair under ``key_label``: the only one, or, while a rotation's new key stands
    beside it under the same label, the one the installed certificate (``certificate_spki``)
    belongs to. Its "others" are the CKA_IDs of the rest. None when there is no key. With
    several and none that the certificate belongs to, ``required`` refuses; else the first."""
    ids = token.key_ids(key_label)
    if len(ids) <= 1:
        found = token.key(key_label)
        if found is not None:
            found["others"] = []
        return found
    for key_id in ids:
        found = token.key(key_label, key_id)
        if certificate_spki and _spki(public_key_of(found)) == certificate_spki:
            found["others"] = [other for other in ids if other != key_id]
            return found
    if required:
        raise TokenError("PKCS#11 token %r: label %r names %d key pairs (CKA_ID %s) and the installed certificate "
                         "belongs to none of them; a rotation stopped after making its new key. Remove the key "
                         "pair nginx does not use (pkcs11-tool --delete-object --type privkey --id <CKA_ID>, and "
                         "--type pubkey) and run again" % (token.token_label, key_label, len(ids), ", ".join(ids)))
    found = token.key(key_label, ids[0])
    found["others"] = ids[1:]
    return found


def _describe(key, token_label, key_label, created, want_public=True):
    if key is None:
        return {"exists": False, "created": False}
    if not want_public:
        return {"exists": True, "created": created, "sensitive": key["sensitive"],
                "extractable": key["extractable"], "key_id": key["id"]}
    from cryptography.hazmat.primitives import serialization

    if key["key_type"] != "ecdsa-p256":
        raise TokenError("PKCS#11 token %r: the key %r is %s; a tier's key must be EC P-256"
                         % (token_label, key_label, key["key_type"]))
    public_key = ec_point_to_public_key(key["ec_point"])
    pem = public_key.public_bytes(serialization.Encoding.PEM,
                                  serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")
    return {"exists": True, "created": created, "public_key_pem": pem, "key_id": key["id"],
            "sensitive": key["sensitive"], "extractable": key["extractable"]}


def _inspect(module_path, token_label, pin, key_label, create, want_public=True, certificate_spki=None):
    with Token(module_path, token_label, pin) as token:
        # A check only looks: with a rotation's leftover beside the live key it reports the first.
        key = _live_key(token, key_label, certificate_spki, required=want_public)
        created = False
        if key is None and create:
            token.generate(key_label)
            key = token.key(key_label)
            created = True
        return _describe(key, token_label, key_label, created, want_public)


def _stage(module_path, token_label, pin, key_label, certificate_spki):
    """A rotation's new key pair, made under the live key's own label beside it (its CKA_ID tells
    them apart), so that no key nginx's workers use is ever written to: SoftHSM2 rewrites an
    object's file to change its label, and a worker that reads it meanwhile finds its key's
    handle invalid. A new key left by a rotation that stopped, and a key labelled
    <key_label>.next by an earlier version of this module, are removed first."""
    with Token(module_path, token_label, pin) as token:
        live = _live_key(token, key_label, certificate_spki)
        leftovers = live["others"] if live else []
        stale = leftovers + token.key_ids(key_label + ".next")
        for key_id in leftovers:
            token.destroy(key_label, key_id)
        token.destroy(key_label + ".next")
        token.generate(key_label)
        new = [key_id for key_id in token.key_ids(key_label) if not live or key_id != live["id"]]
        if len(new) != 1:
            raise TokenError("PKCS#11 token %r: after making a new key under %r, %d keys other than the live one "
                             "are there" % (token_label, key_label, len(new)))
        found = _describe(token.key(key_label, new[0]), token_label, key_label, True)
        found["removed"] = stale
        return found


def _prune(module_path, token_label, pin, key_label, key_id, check_mode):
    """Keep the key pair ``key_id`` under ``key_label`` and remove every other one under that
    label (and under <key_label>.next, an earlier version's staging label): a rotation's last
    step, or its undoing. Refuses when ``key_id`` is not there."""
    with Token(module_path, token_label, pin) as token:
        ids = token.key_ids(key_label)
        if key_id not in ids:
            raise TokenError("PKCS#11 token %r: no key pair under the label %r has the CKA_ID %s (there: %s); "
                             "nothing was removed" % (token_label, key_label, key_id, ", ".join(ids) or "none"))
        others = [other for other in ids if other != key_id]
        legacy = token.key_ids(key_label + ".next")
        if not check_mode:
            for other in others:
                token.destroy(key_label, other)
            token.destroy(key_label + ".next")
        return {"changed": bool(others or legacy), "removed": others + legacy}


def _destroy(module_path, token_label, pin, key_label, key_id=None):
    with Token(module_path, token_label, pin) as token:
        return token.destroy(key_label, key_id)


def _key_ids(module_path, token_label, pin, key_label, key_id=None):
    with Token(module_path, token_label, pin) as token:
        return [found for found in token.key_ids(key_label) if key_id is None or found == key_id]


def ensure_key(module_path, token_label, pin, key_label, state="present", common_name=None,
               engine_path="", user=None, groups=(), certificate_path=None, key_id=None,
               engine_required=False, nginx_path=None, check_mode=False):
    """The key ``key_label`` in the token, as ``state`` asks, checked or made as ``user``.

    state present: made when missing (not in check mode), and with ``common_name`` a CSR signed
    by it; state check: only looked at, never made, and OpenSSL must load the engine with the
    library and PIN (when the engine is installed, or ``engine_required``) and nginx at
    ``nginx_path`` (when it is installed) be built with OpenSSL; state absent: removed (only the
    pair ``key_id`` when given); state staged: a rotation's new key pair, made under the same
    label beside the live one, with a CSR; state pruned: every pair under the label but
    ``key_id`` removed (a rotation's last step, or its undoing). While a rotation's new key
    stands beside the live one, the live one is the key the certificate at
    ``certificate_path`` belongs to. Returns what the module reports: changed, exists, key_id,
    public_key_pem, csr, uri, removed, and the certificate now at ``certificate_path``
    (existing_certificate), which the CA keeps when it still fits, and the engine_path used (an
    empty ``engine_path`` is OpenSSL's engines directory's pkcs11.so)."""
    try:
        engine_path = engine_location(engine_path)
    except TokenError:
        # Before the run installs openssl, a check (or check mode) goes on without the engine,
        # and so does making a key: only the CSR (common_name) is signed through the engine.
        if engine_required or (state in ("present", "staged") and common_name and not check_mode):
            raise
        engine_path = ""
    engine_config(module_path, pin, engine_path)
    if not key_label or any(ord(ch) < 0x20 for ch in key_label):
        raise TokenError("key label %r: give a non-empty label without control characters" % key_label)
    if key_id is not None and not re.fullmatch(r"(?:[0-9a-fA-F]{2})+", key_id):
        raise TokenError("key_id %r: give the key's CKA_ID in hex (as the module returns it)" % key_id)
    key_id = key_id.lower() if key_id else None
    run_as = run_as_user(user, groups) if user else None
    if state == "pruned":
        if not key_id:
            raise TokenError("state pruned needs key_id, the CKA_ID of the key pair to keep under %r" % key_label)
        done = in_child(run_as, _prune, module_path, token_label, pin, key_label, key_id, check_mode)
        return {"changed": done["changed"], "exists": True, "key_id": key_id, "removed": done["removed"],
                "uri": key_uri(token_label, key_label, key_id), "engine_path": engine_path}
    if state == "absent":
        if check_mode:
            found = bool(in_child(run_as, _key_ids, module_path, token_label, pin, key_label, key_id))
        else:
            found = in_child(run_as, _destroy, module_path, token_label, pin, key_label, key_id)
        return {"changed": bool(found), "exists": False, "key_id": key_id or "",
                "uri": key_uri(token_label, key_label, key_id), "engine_path": engine_path}
    certificate_spki = _certificate_spki(certificate_path)
    if state == "staged":
        if check_mode:
            return {"changed": True, "exists": False, "key_id": "", "uri": key_uri(token_label, key_label),
                    "public_key_pem": "", "csr": "", "removed": [], "engine_path": engine_path,
                    "existing_certificate": _existing_certificate(certificate_path)}
        found = in_child(run_as, _stage, module_path, token_label, pin, key_label, certificate_spki)
    elif state == "check" and not engine_required and not binding_installed():
        # Before the run installs PyKCS11 (with the engine, mtls_nginx_pkcs11_packages), a check
        # goes on with the library alone, as it does without the engine; the play checks the
        # token, the PIN and the key once they are installed (engine_required).
        in_child(run_as, check_library, module_path)
        found = {"exists": False, "created": False}
    else:
        # A check needs no cryptography library: it may run before the host has one.
        create = state == "present" and not check_mode
        found = in_child(run_as, _inspect, module_path, token_label, pin, key_label, create, state != "check",
                         certificate_spki)
    result = {"changed": found["created"] or (state == "present" and not found["exists"]),
              "exists": found["exists"], "key_id": found.get("key_id", ""),
              "uri": key_uri(token_label, key_label, found.get("key_id")),
              "public_key_pem": found.get("public_key_pem", ""), "csr": "", "removed": found.get("removed", []),
              "engine_path": engine_path}
    if state == "check":
        if engine_required or os.path.exists(engine_path):
            check_engine(module_path, pin, engine_path, run_as)
        check_nginx(nginx_path)
    if found["exists"] and (found["extractable"] or not found["sensitive"]):
        raise TokenError("PKCS#11 token %r: the private key %r can leave the token (%s); make a new one "
                         "under another label or remove it" % (token_label, key_label,
                                                               "extractable" if found["extractable"] else "not sensitive"))
    # In check mode the engine may not be installed yet (the run would install it): no CSR then.
    engine_missing = check_mode and not os.path.exists(engine_path)
    if state in ("present", "staged") and found["exists"] and common_name and not engine_missing:
        # By CKA_ID: while a rotation's new key stands beside the live one, the label names both.
        result["csr"] = make_csr(module_path, pin, token_label, key_label, common_name, engine_path, run_as,
                                 key_id=found.get("key_id"))
    result["existing_certificate"] = _existing_certificate(certificate_path)
    return result


def _existing_certificate(path):
    """The certificate at ``path`` (PEM), as the key-file flow reads it, or empty when there is none."""
    if not path:
        return ""
    from ._crypto import certificate_pem
    from ._pki import _load_existing_cert

    cert = _load_existing_cert(path)
    return certificate_pem(cert).decode("ascii") if cert is not None else ""
