# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A private key that lives in a PKCS#11 token (an HSM, or SoftHSM2 for tests).

The token is reached through its PKCS#11 module library with ctypes, so nothing beyond the
library itself has to be installed to check it: the library loads, the token with the label
asked is present, the PIN logs in, the key is there. Keys are made inside the token (EC P-256,
sensitive and never extractable); only their public half ever comes out. The CSR is signed by
the token through OpenSSL's pkcs11 engine (``openssl req -engine pkcs11``), the same engine
nginx loads the key with, so a CSR that is made proves that nginx's OpenSSL can use the key.

Every operation can run as another user (nginx's worker user), in a child process, because the
workers are the ones that use the key during handshakes: what works here works for them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import json
import os
import re
import shutil
import subprocess
import tempfile

CK_ULONG = ctypes.c_ulong
CK_BBOOL = ctypes.c_ubyte

CKR_OK = 0
CKR_USER_ALREADY_LOGGED_IN = 0x100
CKR_CRYPTOKI_ALREADY_INITIALIZED = 0x191
_CKR_NAMES = {
    0x5: "CKR_GENERAL_ERROR", 0x6: "CKR_FUNCTION_FAILED", 0x7: "CKR_ARGUMENTS_BAD",
    0x30: "CKR_DEVICE_ERROR", 0x31: "CKR_DEVICE_MEMORY", 0x32: "CKR_DEVICE_REMOVED",
    0x82: "CKR_OBJECT_HANDLE_INVALID", 0xA0: "CKR_PIN_INCORRECT", 0xA1: "CKR_PIN_INVALID",
    0xA2: "CKR_PIN_LEN_RANGE", 0xA3: "CKR_PIN_EXPIRED", 0xA4: "CKR_PIN_LOCKED",
    0xB3: "CKR_SESSION_HANDLE_INVALID", 0xE0: "CKR_TOKEN_NOT_PRESENT", 0xE1: "CKR_TOKEN_NOT_RECOGNIZED",
    0xE2: "CKR_TOKEN_WRITE_PROTECTED", 0x101: "CKR_USER_NOT_LOGGED_IN", 0x102: "CKR_USER_PIN_NOT_INITIALIZED",
    0x190: "CKR_CRYPTOKI_NOT_INITIALIZED",
}

CKF_RW_SESSION = 0x2
CKF_SERIAL_SESSION = 0x4
CKF_TOKEN_INITIALIZED = 0x400
CKF_USER_PIN_LOCKED = 0x40000
CKU_USER = 1
CKO_PUBLIC_KEY = 2
CKO_PRIVATE_KEY = 3
CKK_EC = 3
CKM_EC_KEY_PAIR_GEN = 0x1040
CKA_CLASS = 0x0
CKA_TOKEN = 0x1
CKA_PRIVATE = 0x2
CKA_LABEL = 0x3
CKA_KEY_TYPE = 0x100
CKA_ID = 0x102
CKA_SENSITIVE = 0x103
CKA_SIGN = 0x108
CKA_VERIFY = 0x10A
CKA_EXTRACTABLE = 0x162
CKA_NEVER_EXTRACTABLE = 0x164
CKA_ALWAYS_SENSITIVE = 0x165
CKA_EC_PARAMS = 0x180
CKA_EC_POINT = 0x181
# DER of the OID of prime256v1 (P-256), the only curve the keys are made on: OpenSSL 3's
# pkcs11 engine signs CSRs with EC keys, not with RSA ones.
P256_PARAMS = bytes.fromhex("06082a8648ce3d030107")

# The engine's file name in OpenSSL's engines directory (Debian's libengine-pkcs11-openssl puts
# it there, /usr/lib/<architecture>-linux-gnu/engines-3 for OpenSSL 3).
ENGINE_FILE = "pkcs11.so"


class TokenError(Exception):
    """A problem with the module library, the token, the PIN or the key, worded for the operator."""


class _Attribute(ctypes.Structure):
    _fields_ = [("type", CK_ULONG), ("pValue", ctypes.c_void_p), ("ulValueLen", CK_ULONG)]


class _Mechanism(ctypes.Structure):
    _fields_ = [("mechanism", CK_ULONG), ("pParameter", ctypes.c_void_p), ("ulParameterLen", CK_ULONG)]


def _rv_name(rv):
    return _CKR_NAMES.get(rv, "CKR 0x%x" % rv)


class _Template:
    """A CK_ATTRIBUTE array whose values stay alive as long as the template."""

    def __init__(self, items):
        self._buffers = []
        self.array = (_Attribute * len(items))()
        for index, (kind, value) in enumerate(items):
            if isinstance(value, bool):
                value = bytes([1 if value else 0])
            elif isinstance(value, int):
                value = bytes(CK_ULONG(value))
            elif isinstance(value, str):
                value = value.encode("utf-8")
            buf = ctypes.create_string_buffer(value, len(value))
            self._buffers.append(buf)
            self.array[index] = _Attribute(kind, ctypes.cast(buf, ctypes.c_void_p), len(value))

    def __len__(self):
        return len(self.array)


def ec_point_to_public_key(ec_point):
    """The public key from CKA_EC_POINT: a DER OCTET STRING around the point, or the bare point."""
    from cryptography.hazmat.primitives.asymmetric import ec

    point = ec_point
    if len(ec_point) > 2 and ec_point[0] == 0x04 and ec_point[1] == len(ec_point) - 2:
        point = ec_point[2:]
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError as exc:
        raise TokenError("the token's public key is not a P-256 point: %s" % exc)


class Token:
    """A logged-in session with one token, found by its label, through ``module_path``."""

    def __init__(self, module_path, token_label, pin):
        self.module_path = module_path
        self.token_label = token_label
        if not os.path.isabs(module_path):
            raise TokenError("PKCS#11 module %r: give the absolute path of the library" % module_path)
        if not os.path.exists(module_path):
            raise TokenError("PKCS#11 module %s: no such file (is the HSM's or SoftHSM2's library installed?)"
                             % module_path)
        try:
            self.lib = ctypes.CDLL(module_path)
        except OSError as exc:
            raise TokenError("PKCS#11 module %s: cannot load it: %s" % (module_path, exc))
        for name in ("C_Initialize", "C_GetSlotList", "C_OpenSession", "C_Login"):
            if not hasattr(self.lib, name):
                raise TokenError("PKCS#11 module %s: not a PKCS#11 library (no %s)" % (module_path, name))
        self.session = None
        self._call("C_Initialize", None, allow=(CKR_CRYPTOKI_ALREADY_INITIALIZED,))
        self.slot = self._find_slot()
        session = CK_ULONG()
        self._call("C_OpenSession", CK_ULONG(self.slot), CK_ULONG(CKF_SERIAL_SESSION | CKF_RW_SESSION),
                   None, None, ctypes.byref(session))
        self.session = session
        pin_bytes = (pin or "").encode("utf-8")
        rv = self.lib.C_Login(session, CK_ULONG(CKU_USER), ctypes.c_char_p(pin_bytes), CK_ULONG(len(pin_bytes)))
        if rv not in (CKR_OK, CKR_USER_ALREADY_LOGGED_IN):
            hint = {0xA0: "wrong PIN", 0xA4: "the PIN is locked", 0xA2: "the PIN has a length the token refuses",
                    0xA1: "the PIN has characters the token refuses"}.get(rv, "login refused")
            self.close()
            raise TokenError("PKCS#11 token %r (module %s): %s (%s)" % (token_label, module_path, hint, _rv_name(rv)))

    def _call(self, name, *args, **kwargs):
        rv = getattr(self.lib, name)(*args)
        if rv != CKR_OK and rv not in kwargs.get("allow", ()):
            raise TokenError("PKCS#11 token %r (module %s): %s failed: %s"
                             % (self.token_label, self.module_path, name, _rv_name(rv)))
        return rv

    def _find_slot(self):
        count = CK_ULONG()
        self._call("C_GetSlotList", CK_BBOOL(1), None, ctypes.byref(count))
        slots = (CK_ULONG * max(count.value, 1))()
        self._call("C_GetSlotList", CK_BBOOL(1), slots, ctypes.byref(count))
        labels = []
        for slot in list(slots)[:count.value]:
            # CK_TOKEN_INFO: label[32], manufacturerID[32], model[16], serialNumber[16], flags, ...
            info = ctypes.create_string_buffer(1024)
            if self.lib.C_GetTokenInfo(CK_ULONG(slot), info) != CKR_OK:
                continue
            label = info.raw[:32].decode("utf-8", "replace").rstrip(" \x00")
            flags = CK_ULONG.from_buffer_copy(info.raw[96:96 + ctypes.sizeof(CK_ULONG)]).value
            if not flags & CKF_TOKEN_INITIALIZED:
                continue
            if label == self.token_label:
                if flags & CKF_USER_PIN_LOCKED:
                    raise TokenError("PKCS#11 token %r (module %s): the user PIN is locked"
                                     % (self.token_label, self.module_path))
                return slot
            labels.append(label)
        raise TokenError("PKCS#11 module %s: no token labelled %r; tokens present: %s"
                         % (self.module_path, self.token_label, ", ".join(repr(x) for x in labels) or "none"))

    def close(self):
        if self.session is not None:
            self.lib.C_Logout(self.session)
            self.lib.C_CloseSession(self.session)
            self.session = None
        self.lib.C_Finalize(None)

    def find(self, label, object_class):
        template = _Template([(CKA_CLASS, object_class), (CKA_LABEL, label)])
        self._call("C_FindObjectsInit", self.session, template.array, CK_ULONG(len(template)))
        handles = (CK_ULONG * 16)()
        count = CK_ULONG()
        try:
            self._call("C_FindObjects", self.session, handles, CK_ULONG(16), ctypes.byref(count))
        finally:
            self.lib.C_FindObjectsFinal(self.session)
        return list(handles)[:count.value]

    def attribute(self, handle, kind):
        attr = (_Attribute * 1)(_Attribute(kind, None, 0))
        self._call("C_GetAttributeValue", self.session, CK_ULONG(handle), attr, CK_ULONG(1))
        buf = ctypes.create_string_buffer(attr[0].ulValueLen)
        attr[0].pValue = ctypes.cast(buf, ctypes.c_void_p)
        self._call("C_GetAttributeValue", self.session, CK_ULONG(handle), attr, CK_ULONG(1))
        return buf.raw[:attr[0].ulValueLen]

    def flag(self, handle, kind):
        return self.attribute(handle, kind) == b"\x01"

    def key(self, label):
        """The key pair labelled ``label``: None when absent, else a dict with its public point
        (CKA_EC_POINT) and how the token guards its private half."""
        private = self.find(label, CKO_PRIVATE_KEY)
        public = self.find(label, CKO_PUBLIC_KEY)
        if not private and not public:
            return None
        if len(private) != 1 or len(public) != 1:
            raise TokenError("PKCS#11 token %r: label %r names %d private and %d public keys, not one of each; "
                             "remove the extra objects or choose another label"
                             % (self.token_label, label, len(private), len(public)))
        return {"ec_point": self.attribute(public[0], CKA_EC_POINT), "handles": (private[0], public[0]),
                "id": self.attribute(private[0], CKA_ID).hex(),
                "sensitive": self.flag(private[0], CKA_SENSITIVE),
                "extractable": self.flag(private[0], CKA_EXTRACTABLE)}

    def generate(self, label):
        """A new P-256 key pair on the token: the private half sensitive and never extractable."""
        key_id = os.urandom(8)
        public = _Template([(CKA_TOKEN, True), (CKA_LABEL, label), (CKA_ID, key_id), (CKA_VERIFY, True),
                            (CKA_EC_PARAMS, P256_PARAMS)])
        private = _Template([(CKA_TOKEN, True), (CKA_PRIVATE, True), (CKA_LABEL, label), (CKA_ID, key_id),
                             (CKA_SIGN, True), (CKA_SENSITIVE, True), (CKA_EXTRACTABLE, False)])
        mechanism = _Mechanism(CKM_EC_KEY_PAIR_GEN, None, 0)
        h_public, h_private = CK_ULONG(), CK_ULONG()
        self._call("C_GenerateKeyPair", self.session, ctypes.byref(mechanism), public.array,
                   CK_ULONG(len(public)), private.array, CK_ULONG(len(private)),
                   ctypes.byref(h_public), ctypes.byref(h_private))

    def relabel(self, label, new_label):
        """Give both halves of the key pair ``label`` the label ``new_label`` (its CKA_ID, and so
        the URI nginx uses, stays)."""
        handles = self.find(label, CKO_PRIVATE_KEY) + self.find(label, CKO_PUBLIC_KEY)
        for handle in handles:
            template = _Template([(CKA_LABEL, new_label)])
            self._call("C_SetAttributeValue", self.session, CK_ULONG(handle), template.array, CK_ULONG(1))
        return bool(handles)

    def destroy(self, label):
        handles = self.find(label, CKO_PRIVATE_KEY) + self.find(label, CKO_PUBLIC_KEY)
        for handle in handles:
            self._call("C_DestroyObject", self.session, CK_ULONG(handle))
        return bool(handles)


def key_uri(token_label, key_label=None, key_id=None):
    """The RFC 7512 URI of the private key, as the pkcs11 engine and nginx take it: by its
    CKA_ID (hex) when given, which stays when a rotation relabels the key, else by label."""
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


def make_csr(module_path, pin, token_label, key_label, common_name, engine_path, run_as=None):
    """A CSR (PEM) for the token's key, signed by the token through OpenSSL's pkcs11 engine."""
    if not os.path.exists(engine_path):
        raise TokenError("OpenSSL's pkcs11 engine %s is missing (Debian: libengine-pkcs11-openssl)" % engine_path)
    escaped = common_name.replace("\\", "\\\\").replace("$", "\\$")
    # The engine's config (with the PIN) is OpenSSL's own; the request's is a second file,
    # since a -config that loads the engine again fails to initialise it twice.
    request = "[req]\nprompt = no\ndistinguished_name = mtls_nginx_dn\n\n[mtls_nginx_dn]\nCN = %s\n" % escaped
    proc = _openssl(["req", "-new", "-config", "req.cnf", "-engine", "pkcs11", "-keyform", "engine",
                     "-key", key_uri(token_label, key_label)], module_path, pin, engine_path, run_as,
                    [("req.cnf", request)])
    out = proc.stdout.decode("ascii", "replace")
    if proc.returncode != 0 or "BEGIN CERTIFICATE REQUEST" not in out:
        raise TokenError("OpenSSL could not sign a CSR with %s through the pkcs11 engine %s: %s"
                         % (key_uri(token_label, key_label), engine_path, _stderr(proc, pin) or "no output"))
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


def in_child(run_as, func, *args):
    """``func(*args)`` in a child process running as ``run_as`` (uid, gid, groups, name); its
    result (JSON-able) or its TokenError comes back. Without ``run_as``, it runs here."""
    if run_as is None:
        return func(*args)
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


def _inspect(module_path, token_label, pin, key_label, create, want_public=True):
    token = Token(module_path, token_label, pin)
    try:
        key = token.key(key_label)
        created = False
        if key is None and create:
            token.generate(key_label)
            key = token.key(key_label)
            created = True
        if key is None:
            return {"exists": False, "created": False}
        if not want_public:
            return {"exists": True, "created": created, "sensitive": key["sensitive"],
                    "extractable": key["extractable"], "key_id": key["id"]}
        from cryptography.hazmat.primitives import serialization

        public_key = ec_point_to_public_key(key["ec_point"])
        pem = public_key.public_bytes(serialization.Encoding.PEM,
                                      serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")
        return {"exists": True, "created": created, "public_key_pem": pem, "key_id": key["id"],
                "sensitive": key["sensitive"], "extractable": key["extractable"]}
    finally:
        token.close()


def _promote(module_path, token_label, pin, key_label, promote_to, check_mode):
    """The staged key pair ``key_label`` takes the label ``promote_to``, whose old key pair is
    removed. Nothing to do when ``key_label`` is gone (promoted already)."""
    token = Token(module_path, token_label, pin)
    try:
        staged = token.key(key_label)
        if staged is None:
            live = token.key(promote_to)
            return {"changed": False, "key_id": live["id"] if live else ""}
        if not check_mode:
            token.destroy(promote_to)
            token.relabel(key_label, promote_to)
        return {"changed": True, "key_id": staged["id"]}
    finally:
        token.close()


def _destroy(module_path, token_label, pin, key_label):
    token = Token(module_path, token_label, pin)
    try:
        return token.destroy(key_label)
    finally:
        token.close()


def ensure_key(module_path, token_label, pin, key_label, state="present", common_name=None,
               engine_path="", user=None, groups=(), certificate_path=None, promote_to=None,
               engine_required=False, nginx_path=None, check_mode=False):
    """The key ``key_label`` in the token, as ``state`` asks, checked or made as ``user``.

    state present: made when missing (not in check mode), and with ``common_name`` a CSR signed
    by it; state check: only looked at, never made, and OpenSSL must load the engine with the
    library and PIN (when the engine is installed, or ``engine_required``) and nginx at
    ``nginx_path`` (when it is installed) be built with OpenSSL; state absent: removed; state promoted: the
    key takes the label ``promote_to`` (a rotation's last step). Returns what the module
    reports: changed, exists, key_id, public_key_pem, csr, uri, and the certificate now at
    ``certificate_path`` (existing_certificate), which the CA keeps when it still fits, and the
    engine_path used (an empty ``engine_path`` is OpenSSL's engines directory's pkcs11.so)."""
    try:
        engine_path = engine_location(engine_path)
    except TokenError:
        # Before the run installs openssl, a check (or check mode) goes on without the engine,
        # and so does making a key: only the CSR (common_name) is signed through the engine.
        if engine_required or (state == "present" and common_name and not check_mode):
            raise
        engine_path = ""
    engine_config(module_path, pin, engine_path)
    if not key_label or any(ord(ch) < 0x20 for ch in key_label):
        raise TokenError("key label %r: give a non-empty label without control characters" % key_label)
    run_as = run_as_user(user, groups) if user else None
    if state == "promoted":
        if not promote_to or promote_to == key_label:
            raise TokenError("state promoted needs promote_to, the label the key %r takes" % key_label)
        done = in_child(run_as, _promote, module_path, token_label, pin, key_label, promote_to, check_mode)
        return {"changed": done["changed"], "exists": bool(done["key_id"]), "key_id": done["key_id"],
                "uri": key_uri(token_label, promote_to, done["key_id"]), "engine_path": engine_path}
    uri = key_uri(token_label, key_label)
    if state == "absent":
        if check_mode:
            found = in_child(run_as, _inspect, module_path, token_label, pin, key_label, False)["exists"]
        else:
            found = in_child(run_as, _destroy, module_path, token_label, pin, key_label)
        return {"changed": bool(found), "exists": False, "uri": uri, "engine_path": engine_path}
    create = state == "present" and not check_mode
    # A check needs no cryptography library: it may run before the host has one.
    found = in_child(run_as, _inspect, module_path, token_label, pin, key_label, create, state != "check")
    result = {"changed": found["created"] or (state == "present" and not found["exists"]),
              "exists": found["exists"], "key_id": found.get("key_id", ""),
              "uri": key_uri(token_label, key_label, found.get("key_id")),
              "public_key_pem": found.get("public_key_pem", ""), "csr": "", "engine_path": engine_path}
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
    if state == "present" and found["exists"] and common_name and not engine_missing:
        result["csr"] = make_csr(module_path, pin, token_label, key_label, common_name, engine_path, run_as)
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
