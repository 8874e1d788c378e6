# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backup and restore of a CA's whole directory (``mtls_pki_dir``) as one encrypted file.

An archive is three parts, one after the other::

    MTLS-NGINX-CA-ARCHIVE 1\\n           the magic line: what this file is, and its format
    {"ca": ..., "ciphertext": ...}\\n    the header: one line of JSON, in clear
    <ciphertext>                        AES-256-GCM (16-byte tag at its end) of a tar

The header holds what may be read without the passphrase: the format, when the archive was
made, the CA as the collection sees it (the root's subject and the SHA-256 fingerprint of
``ca.pem``, and of every CA certificate of the directory), the scrypt parameters and salt that
derive the key from the passphrase, the GCM nonce, and the length and SHA-256 of the
ciphertext. The tar, made in memory and never written in clear, holds every file and directory
of the CA directory but its ``.lock``. The magic line and the header (less its ``ciphertext``
field) are GCM's associated data: a changed header does not decrypt.

Reading an archive tells its problems apart: not an archive (no magic line), truncated (shorter
than its header says), damaged (the ciphertext's SHA-256 differs from the header's), a wrong
passphrase (the digest matches but GCM's authentication fails), an unsafe tar (an absolute
path, ``..``, a link, a device) and a CA that fails the consistency checks of
:func:`check_content`. Restoring unpacks into a new directory beside the destination and renames
it into place, so a destination is either untouched or whole.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import io
import json
import os
import shutil
import stat
import tarfile
import tempfile
import threading

from ._crypto import (
    PKIError,
    crl_signed_by,
    fingerprint_sha256,
    is_ca,
    is_self_signed,
    issued_by,
    load_certificates,
    load_crl,
    not_after,
    pem_blocks,
    same_public_key,
    utcnow,
)
from ._files import atomic_write
from ._ledger import LEDGER_FILE, LOCK_FILE, STATUSES, Ledger, locked

try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
except ImportError:  # the modules call require_cryptography before they get here
    pass

MAGIC = b"MTLS-NGINX-CA-ARCHIVE"
FORMAT = 1
MAGIC_LINE = MAGIC + b" %d\n" % FORMAT
# scrypt's cost: 2**17 * 8 * 128 bytes = 128 MiB of memory, about half a second, once per run.
SCRYPT_N = 2 ** 17
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
NONCE_BYTES = 12
KEY_BYTES = 32
MIN_PASSPHRASE = 12
# What a header may ask of scrypt, so that a crafted one cannot exhaust the host's memory (1 GiB).
MAX_SCRYPT_MEMORY = 1 << 30
MAX_HEADER = 1 << 20
MAX_ARCHIVE = 1 << 30
NOTHING_CHANGED = "nothing was changed"


# --- the CA directory as files in memory --------------------------------------------------------

class Content:
    """The files (name: bytes, mode, mtime) and directories (name: mode) of a CA directory, by
    their path relative to it, "/"-separated."""

    def __init__(self):
        self.files = {}
        self.dirs = {}

    def names(self):
        return sorted(self.files)


def _walk(top):
    """Every entry below ``top`` (symbolic links not followed): (relative name, lstat), parents
    first, sorted; the lock file at the top is left out."""
    out = []

    def visit(directory, prefix):
        with os.scandir(directory) as entries:
            found = sorted(entries, key=lambda entry: entry.name)
        for entry in found:
            name = prefix + entry.name
            if name == LOCK_FILE:
                continue
            info = entry.stat(follow_symlinks=False)
            out.append((name, info))
            if stat.S_ISDIR(info.st_mode):
                visit(entry.path, name + "/")

    visit(top, "")
    return out


def _kind(info):
    if stat.S_ISREG(info.st_mode):
        return "file"
    if stat.S_ISDIR(info.st_mode):
        return "directory"
    if stat.S_ISLNK(info.st_mode):
        return "symbolic link"
    return "device, FIFO or socket"


def _read(path):
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def read_directory(path):
    """The CA directory ``path`` as :class:`Content`; a link or a special file is refused, since
    an archive holds none."""
    content = Content()
    for name, info in _walk(path):
        kind = _kind(info)
        if kind == "directory":
            content.dirs[name] = stat.S_IMODE(info.st_mode)
        elif kind == "file":
            content.files[name] = (_read(os.path.join(path, name)), stat.S_IMODE(info.st_mode), int(info.st_mtime))
        else:
            raise PKIError("%s: a %s; a CA directory holds files and directories only, and so does its archive; "
                           "nothing was written" % (os.path.join(path, name), kind))
    return content


def pack(content):
    """The tar (bytes, in memory) of ``content``: owners left out, modes and times kept."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(set(content.dirs) | set(content.files)):
            info = tarfile.TarInfo(name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if name in content.dirs:
                info.type = tarfile.DIRTYPE
                info.mode = content.dirs[name]
                tar.addfile(info)
            else:
                data, mode, mtime = content.files[name]
                info.size, info.mode, info.mtime = len(data), mode, mtime
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def unpack(data, where):
    """:class:`Content` from the tar ``data``, refusing any member that could land outside the
    directory or is not a plain file or directory: absolute paths, ``..``, links, devices."""
    content = Content()
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for member in tar:
                name = _member_name(member, where)
                if name in content.files or name in content.dirs:
                    raise PKIError("%s: %s appears twice in the archive" % (where, name))
                if member.isdir():
                    content.dirs[name] = stat.S_IMODE(member.mode)
                else:
                    content.files[name] = (tar.extractfile(member).read(), stat.S_IMODE(member.mode),
                                           int(member.mtime))
    except tarfile.TarError as exc:
        raise PKIError("%s: its content is not a readable tar (%s)" % (where, exc))
    for name in content.files:
        parent = name.rpartition("/")[0]
        while parent:
            if parent in content.files:
                raise PKIError("%s: %s is both a file and the directory of %s" % (where, parent, name))
            parent = parent.rpartition("/")[0]
    return content


def _member_name(member, where):
    name = member.name
    plain = name[:-1] if member.isdir() and name.endswith("/") else name
    parts = plain.split("/")
    problem = None
    if name.startswith("/") or os.path.isabs(name):
        problem = "an absolute path"
    elif ".." in parts:
        problem = "a path that leads outside the CA directory (..)"
    elif not plain or "" in parts or "." in parts or "\0" in plain:
        problem = "not a plain relative path"
    elif member.issym() or member.islnk():
        problem = "a link (to %s)" % member.linkname
    elif member.ischr() or member.isblk() or member.isfifo():
        problem = "a device or FIFO"
    elif not (member.isreg() or member.isdir()):
        problem = "neither a file nor a directory (tar type %r)" % member.type
    elif plain == LOCK_FILE:
        problem = "the lock of a run, which no archive holds"
    if problem:
        raise PKIError("%s: refusing the archive, its member %r is %s; %s" % (where, name, problem, NOTHING_CHANGED))
    return plain


# --- the consistency checks ---------------------------------------------------------------------

def check_content(content, where):
    """Check that ``content`` is a whole, consistent CA; what it holds, as the modules return it.

    ``ca.pem`` is there and is a CA; every key beside a CA certificate (``X.key`` beside
    ``X.pem``) holds its public key (an encrypted key is noted, not opened); each chain
    (``*-chain.pem``) starts with its CA and verifies, certificate by certificate, up to a root;
    each CRL is signed by a CA certificate of the archive that carries its issuer's name; the
    ledger loads. ``where(name)`` names a file in messages."""
    checks = []
    if "ca.pem" not in content.files:
        raise PKIError("%s: not there, so this is not the directory of a CA of mtls.nginx (mtls_pki_dir); %s"
                       % (where("ca.pem"), NOTHING_CHANGED))
    certificates, chains, ca_certificates = {}, {}, []
    for name in content.names():
        if not name.endswith(".pem"):
            continue
        data = content.files[name][0]
        if name != "ca.pem" and not any(block.label == "CERTIFICATE" for block in pem_blocks(data)):
            continue
        loaded = load_certificates(data, where(name))
        if name.endswith("-chain.pem"):
            chains[name] = loaded
            continue
        certificates[name] = loaded
        ca_certificates += [(name, cert) for cert in loaded if is_ca(cert)]
    root = certificates["ca.pem"][0]
    if not is_ca(root):
        raise PKIError("%s: %s is not a CA certificate" % (where("ca.pem"), root.subject.rfc4514_string()))
    for name in content.names():
        if name.endswith(".key"):
            checks.append(_check_key(content, certificates, name, where))
    for name in sorted(chains):
        checks.append(_check_chain(name, chains[name], certificates, ca_certificates, where))
    for name in content.names():
        if name.endswith(".crl"):
            checks.append(_check_crl(name, load_crl(content.files[name][0], where(name)), ca_certificates, where))
    ledger = _ledger_counts(content, where)
    if LEDGER_FILE in content.files:
        checks.append("%s: loads, %d certificates" % (LEDGER_FILE, ledger["total"]))
    return {
        "ca": {"subject": root.subject.rfc4514_string(), "fingerprint_sha256": fingerprint_sha256(root)},
        # The root first, then the directory's other CAs, then those of the generations under it.
        "certificates": [{"file": name, "subject": cert.subject.rfc4514_string(),
                          "fingerprint_sha256": fingerprint_sha256(cert), "not_after": not_after(cert).isoformat()}
                         for name, cert in sorted(ca_certificates, key=lambda item: (item[0] != "ca.pem",
                                                                                     "/" in item[0], item[0]))],
        "files": content.names(),
        "ledger": ledger,
        "checks": [check for check in checks if check],
    }


def _check_key(content, certificates, name, where):
    certificate_file = name[:-len(".key")] + ".pem"
    certs = certificates.get(certificate_file)
    if not certs or not is_ca(certs[0]):
        return None
    try:
        key = serialization.load_pem_private_key(content.files[name][0], password=None)
    except TypeError:
        return "%s: encrypted, not compared with %s" % (name, certificate_file)
    except ValueError as exc:
        raise PKIError("%s: not a readable PEM private key (%s)" % (where(name), exc))
    if not same_public_key(key.public_key(), certs[0].public_key()):
        raise PKIError("%s: does not belong to %s (%s): their public keys differ"
                       % (where(name), certificate_file, certs[0].subject.rfc4514_string()))
    return "%s: the key of %s" % (name, certificate_file)


def _check_chain(name, chain, certificates, ca_certificates, where):
    own = certificates.get(name[:-len("-chain.pem")] + ".pem")
    if own and fingerprint_sha256(own[0]) != fingerprint_sha256(chain[0]):
        raise PKIError("%s: starts with %s (%s), not with the certificate of %s (%s)"
                       % (where(name), chain[0].subject.rfc4514_string(), fingerprint_sha256(chain[0]),
                          name[:-len("-chain.pem")] + ".pem", fingerprint_sha256(own[0])))
    for number, (cert, parent) in enumerate(zip(chain, chain[1:]), 1):
        if not issued_by(cert, parent):
            raise PKIError("%s: certificate %d (%s) is not signed by certificate %d (%s) after it"
                           % (where(name), number, cert.subject.rfc4514_string(), number + 1,
                              parent.subject.rfc4514_string()))
    top = chain[-1]
    for _step in range(8):
        if is_self_signed(top):
            return "%s: verifies to %s" % (name, top.subject.rfc4514_string())
        parents = [cert for _file, cert in ca_certificates if issued_by(top, cert)]
        if not parents:
            break
        top = parents[0]
    raise PKIError("%s: does not verify to a root: %s is not self-signed and no CA certificate of the directory "
                   "signed it" % (where(name), top.subject.rfc4514_string()))


def _check_crl(name, crl, ca_certificates, where):
    issuer = crl.issuer.rfc4514_string()
    named = [(file, cert) for file, cert in ca_certificates if cert.subject == crl.issuer]
    if not named:
        raise PKIError("%s: issued by %s, which is none of the CA certificates of the directory"
                       % (where(name), issuer))
    for file, cert in named:
        if crl_signed_by(crl, cert):
            return "%s: signed by %s (%s)" % (name, issuer, file)
    raise PKIError("%s: carries the name of %s (%s) but is not signed by its key"
                   % (where(name), issuer, ", ".join(file for file, _cert in named)))


def _ledger_counts(content, where):
    counts = dict((status, 0) for status in STATUSES)
    counts["total"] = 0
    if LEDGER_FILE not in content.files:
        return counts
    try:
        ledger = _load_ledger(content.files[LEDGER_FILE][0])
        found = collections.Counter(entry.get("status") for entry in ledger.entries)
    except PKIError as exc:
        # Ledger names the file by the descriptor it read; name it as the user knows it.
        problem = (str(exc).partition(": ")[2] or str(exc)).replace("; restore it from a backup", "")
        raise PKIError("%s: %s" % (where(LEDGER_FILE), problem))
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise PKIError("%s: not a ledger of mtls.nginx (%s)" % (where(LEDGER_FILE), exc))
    counts.update(found)
    counts["total"] = len(ledger.entries)
    return counts


def _load_ledger(data):
    """Load ``data`` with :class:`Ledger`, which reads a path or a file descriptor: a pipe here,
    so that checking an archive writes nothing anywhere."""
    read_fd, write_fd = os.pipe()

    def feed():
        try:
            with os.fdopen(write_fd, "wb") as handle:
                handle.write(data)
        except OSError:  # the reader gave up early
            pass

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        return Ledger(read_fd)  # opens the descriptor, and closes it once read
    finally:
        feeder.join()


# --- encryption ---------------------------------------------------------------------------------

def _b64(data):
    return base64.b64encode(data).decode("ascii")


def _canonical(header):
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode("ascii")


def _associated_data(header):
    """What GCM authenticates besides the ciphertext: the magic line and the header but its
    ``ciphertext`` field (which describes the ciphertext, so comes after it)."""
    return MAGIC_LINE + _canonical(dict((key, value) for key, value in header.items() if key != "ciphertext"))


def _derive(passphrase, kdf):
    scrypt = Scrypt(salt=base64.b64decode(kdf["salt"]), length=KEY_BYTES, n=kdf["n"], r=kdf["r"], p=kdf["p"])
    return scrypt.derive(passphrase.encode("utf-8") if isinstance(passphrase, str) else passphrase)


def check_passphrase(passphrase):
    if not passphrase or len(passphrase) < MIN_PASSPHRASE:
        raise PKIError("passphrase: at least %d characters are needed, this one has %d"
                       % (MIN_PASSPHRASE, len(passphrase or "")))


def seal(payload, passphrase, summary, scrypt_n=None, created=None):
    """The archive (bytes) of the tar ``payload``, encrypted with a key derived from
    ``passphrase``; ``summary`` (of :func:`check_content`) gives the header its view of the CA."""
    check_passphrase(passphrase)
    header = {
        "format": FORMAT,
        "created": (created or utcnow()).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "collection": "mtls.nginx",
        "ca": summary["ca"],
        "certificates": [dict((key, cert[key]) for key in ("file", "subject", "fingerprint_sha256"))
                         for cert in summary["certificates"]],
        "kdf": {"name": "scrypt", "n": scrypt_n or SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P, "length": KEY_BYTES,
                "salt": _b64(os.urandom(SALT_BYTES))},
        "cipher": {"name": "AES-256-GCM", "nonce": _b64(os.urandom(NONCE_BYTES))},
        "payload": "tar",
    }
    _check_kdf(header["kdf"], "scrypt_n")
    key = _derive(passphrase, header["kdf"])
    ciphertext = AESGCM(key).encrypt(base64.b64decode(header["cipher"]["nonce"]), payload, _associated_data(header))
    header["ciphertext"] = {"length": len(ciphertext), "sha256": hashlib.sha256(ciphertext).hexdigest()}
    return MAGIC_LINE + _canonical(header) + b"\n" + ciphertext


def _check_kdf(kdf, where):
    n, r, p = kdf.get("n"), kdf.get("r"), kdf.get("p")
    if not all(isinstance(value, int) and not isinstance(value, bool) and value > 0 for value in (n, r, p)):
        raise PKIError("%s: scrypt's n, r and p must be positive integers" % where)
    if n < 2 or n & (n - 1) or 128 * n * r * p > MAX_SCRYPT_MEMORY or kdf.get("length") != KEY_BYTES:
        raise PKIError("%s: scrypt parameters n=%s r=%s p=%s length=%s are not ones this collection uses (n a power of "
                       "2, at most %d MiB of memory, a %d-byte key)"
                       % (where, n, r, p, kdf.get("length"), MAX_SCRYPT_MEMORY >> 20, KEY_BYTES))


def read_header(data, where):
    """The header of the archive ``data`` and where its ciphertext starts, once the file is
    known whole: not an archive, truncated or damaged are told apart here."""
    if not data.startswith(MAGIC + b" "):
        raise PKIError("%s: not an archive of mtls.nginx.ca_archive (it does not start with its %s line); %s"
                       % (where, MAGIC_LINE.strip().decode(), NOTHING_CHANGED))
    end = data.find(b"\n")
    if end < 0 or end > 64:
        raise PKIError("%s: truncated: %d bytes, cut inside its first line; %s" % (where, len(data), NOTHING_CHANGED))
    if data[:end + 1] != MAGIC_LINE:
        version = data[len(MAGIC) + 1:end].decode("ascii", "replace")
        raise PKIError("%s: archive format %s, which this collection does not read (it reads format %d); %s"
                       % (where, version, FORMAT, NOTHING_CHANGED))
    start = end + 1
    end = data.find(b"\n", start, start + MAX_HEADER)
    if end < 0:
        if len(data) - start < MAX_HEADER:
            raise PKIError("%s: truncated: %d bytes, cut inside its header; %s" % (where, len(data), NOTHING_CHANGED))
        raise PKIError("%s: damaged: its header does not end within %d bytes; %s" % (where, MAX_HEADER, NOTHING_CHANGED))
    try:
        header = json.loads(data[start:end].decode("utf-8"))
        kdf, cipher, ciphertext = header["kdf"], header["cipher"], header["ciphertext"]
        length, digest = ciphertext["length"], ciphertext["sha256"]
        salt, nonce = base64.b64decode(kdf["salt"], validate=True), base64.b64decode(cipher["nonce"], validate=True)
        if header.get("format") != FORMAT or kdf.get("name") != "scrypt" or cipher.get("name") != "AES-256-GCM":
            raise ValueError("format %r, kdf %r, cipher %r" % (header.get("format"), kdf.get("name"), cipher.get("name")))
        if not isinstance(length, int) or length < 16 or not isinstance(digest, str):
            raise ValueError("ciphertext length %r, sha256 %r" % (length, digest))
        if len(salt) < SALT_BYTES or len(nonce) != NONCE_BYTES:
            raise ValueError("a %d-byte salt and a %d-byte nonce" % (len(salt), len(nonce)))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PKIError("%s: damaged: its header is not the one of an archive of format %d (%s); %s"
                       % (where, FORMAT, exc, NOTHING_CHANGED))
    _check_kdf(kdf, "%s: damaged: its header" % where)
    start = end + 1
    size = start + length
    if len(data) < size:
        raise PKIError("%s: truncated: %d of %d bytes; %s" % (where, len(data), size, NOTHING_CHANGED))
    if len(data) > size:
        raise PKIError("%s: damaged: %d bytes where its header says %d; %s" % (where, len(data), size, NOTHING_CHANGED))
    found = hashlib.sha256(data[start:]).hexdigest()
    if found != digest.lower():
        raise PKIError("%s: damaged: the SHA-256 of its ciphertext is %s, its header says %s; %s"
                       % (where, found, digest, NOTHING_CHANGED))
    return header, start


def open_archive(data, passphrase, where):
    """(header, tar bytes) of the archive ``data``, decrypted with ``passphrase``."""
    header, start = read_header(data, where)
    key = _derive(passphrase, header["kdf"])
    try:
        return header, AESGCM(key).decrypt(base64.b64decode(header["cipher"]["nonce"]), data[start:],
                                           _associated_data(header))
    except InvalidTag:
        raise PKIError("%s: wrong passphrase: the archive is whole (the SHA-256 of its ciphertext matches its header) "
                       "but does not decrypt with this passphrase (or its header was altered); %s"
                       % (where, NOTHING_CHANGED))


def load_archive(src, passphrase, expect=()):
    """Read, decrypt and check the archive ``src``: (header, content, summary)."""
    try:
        size = os.path.getsize(src)
    except OSError as exc:
        raise PKIError("%s: cannot be read (%s)" % (src, exc.strerror or exc))
    if size > MAX_ARCHIVE:
        raise PKIError("%s: %d bytes, more than the %d MiB an archive of a CA can be" % (src, size, MAX_ARCHIVE >> 20))
    try:
        data = _read(src)
    except OSError as exc:
        raise PKIError("%s: cannot be read (%s)" % (src, exc.strerror or exc))
    header, payload = open_archive(data, passphrase, src)
    content = unpack(payload, src)
    try:
        summary = check_content(content, lambda name: "%s in %s" % (name, src))
    except PKIError as exc:
        message = str(exc)
        raise PKIError(message if message.endswith(NOTHING_CHANGED) else "%s; refusing the archive, %s"
                       % (message, NOTHING_CHANGED))
    wanted = [_fingerprint(value) for value in expect]
    held = [cert["fingerprint_sha256"] for cert in summary["certificates"]]
    if wanted and not set(wanted) & set(fp.replace(":", "") for fp in held):
        raise PKIError("%s: an archive of another CA: it holds %s, expected %s; %s"
                       % (src, ", ".join("%s (%s)" % (cert["subject"], cert["fingerprint_sha256"])
                                         for cert in summary["certificates"]),
                          ", ".join(_colons(fp) for fp in wanted), NOTHING_CHANGED))
    return header, content, summary


def _fingerprint(value):
    text = "".join(str(value).split()).replace(":", "").upper()
    if len(text) != 64 or any(char not in "0123456789ABCDEF" for char in text):
        raise PKIError("expect_ca_fingerprint: %r is not a SHA-256 fingerprint (64 hex digits, colons allowed)" % value)
    return text


def _colons(text):
    return ":".join(text[i:i + 2] for i in range(0, len(text), 2))


# --- the three operations -----------------------------------------------------------------------

def backup(path, dest, passphrase, check_mode=False, lock_timeout=300.0, lock_holder="", scrypt_n=None):
    """Write the archive of the CA directory ``path`` to ``dest`` (atomically, mode 0600),
    reading the directory under its lock. Always a change, but in check mode nothing is written."""
    check_passphrase(passphrase)
    path, dest = os.path.abspath(path), os.path.abspath(dest)
    if not os.path.isdir(path):
        raise PKIError("%s: not a directory; path is the CA's directory (mtls_pki_dir)" % path)
    if not os.path.isfile(os.path.join(path, "ca.pem")):
        raise PKIError("%s: no ca.pem there, so not the directory of a CA of mtls.nginx (mtls_pki_dir); nothing was "
                       "written" % path)
    parent = os.path.dirname(dest)
    if not os.path.isdir(parent):
        raise PKIError("%s: directory %s does not exist" % (dest, parent))
    if os.path.isdir(dest):
        raise PKIError("%s: a directory; dest is the archive file to write" % dest)
    real = os.path.realpath(path)
    if os.path.commonpath([real, os.path.realpath(parent)]) == real:
        raise PKIError("%s: inside the CA directory %s, where each backup would hold the one before; write it "
                       "elsewhere" % (dest, path))
    with locked(path, lock_holder or "ca_archive backup", lock_timeout, check_mode):
        content = read_directory(path)
    summary = check_content(content, lambda name: os.path.join(path, name))
    archive = seal(pack(content), passphrase, summary, scrypt_n=scrypt_n)
    if not check_mode:
        atomic_write(dest, archive, 0o600)
    return dict(summary, changed=True, dest=dest, size=len(archive))


def verify(src, passphrase, expect=()):
    """What the archive ``src`` holds, once read, decrypted and checked; writes nothing."""
    header, _content, summary = load_archive(os.path.abspath(src), passphrase, expect)
    return dict(summary, changed=False, created=header.get("created"))


def restore(src, passphrase, path, expect=(), check_mode=False):
    """Restore the archive ``src`` as the CA directory ``path``: absent or empty, or already
    holding exactly what the archive holds (no change). Everything is checked first; the files
    land in a new directory beside ``path`` that is then renamed into place."""
    src, path = os.path.abspath(src), os.path.abspath(path)
    header, content, summary = load_archive(src, passphrase, expect)
    state = _destination(path, content, summary)
    result = dict(summary, changed=state != "identical", path=path, created=header.get("created"))
    if state == "identical" or check_mode:
        return result
    _unpack_into_place(content, path)
    return result


def _destination(path, content, summary):
    """absent, empty or identical; any other destination is refused."""
    parent = os.path.dirname(path)
    if not os.path.lexists(path):
        if not os.path.isdir(parent):
            raise PKIError("%s: directory %s does not exist; %s" % (path, parent, NOTHING_CHANGED))
        return "absent"
    if os.path.islink(path) or not os.path.isdir(path):
        raise PKIError("%s: exists and is %s, not a directory; %s"
                       % (path, "a symbolic link" if os.path.islink(path) else "a file", NOTHING_CHANGED))
    present = os.listdir(path)
    if not present:
        return "empty"
    if present == [LOCK_FILE]:
        raise PKIError("%s: another run holds the lock of this directory (%s exists); %s"
                       % (path, LOCK_FILE, NOTHING_CHANGED))
    ca_pem = os.path.join(path, "ca.pem")
    if os.path.isfile(ca_pem):
        try:
            theirs = load_certificates(_read(ca_pem), ca_pem)[0]
        except (PKIError, OSError) as exc:
            raise PKIError("%s: already holds a ca.pem that cannot be read (%s); %s" % (path, exc, NOTHING_CHANGED))
        if fingerprint_sha256(theirs) != summary["ca"]["fingerprint_sha256"]:
            raise PKIError("%s: holds another CA: its ca.pem is %s (%s), the archive's is %s (%s); restore into a new "
                           "or empty directory; %s"
                           % (path, theirs.subject.rfc4514_string(), fingerprint_sha256(theirs),
                              summary["ca"]["subject"], summary["ca"]["fingerprint_sha256"], NOTHING_CHANGED))
    differences = _differences(path, content)
    if differences:
        shown = differences[:10] + (["and %d more" % (len(differences) - 10)] if len(differences) > 10 else [])
        raise PKIError("%s: already holds files other than the archive's: %s; restore into a new or empty directory; %s"
                       % (path, ", ".join(shown), NOTHING_CHANGED))
    return "identical"


def _differences(path, content):
    found, out = {}, []
    for name, info in _walk(path):
        found[name] = info
        kind = _kind(info)
        if name in content.files:
            if kind != "file":
                out.append("%s (a %s, the archive's is a file)" % (name, kind))
            elif _read(os.path.join(path, name)) != content.files[name][0]:
                out.append("%s (differs)" % name)
        elif name in content.dirs:
            if kind != "directory":
                out.append("%s (a %s, the archive's is a directory)" % (name, kind))
        else:
            out.append("%s (not in the archive)" % name)
    out += ["%s (missing)" % name for name in sorted(set(content.files) | set(content.dirs)) if name not in found]
    return out


def _unpack_into_place(content, path):
    parent = os.path.dirname(path)
    temporary = tempfile.mkdtemp(prefix="." + os.path.basename(path) + ".restore-", dir=parent)
    try:
        os.chmod(temporary, 0o700)
        for name in sorted(content.dirs):
            os.makedirs(os.path.join(temporary, name), mode=0o700, exist_ok=True)
            os.chmod(os.path.join(temporary, name), 0o700)
        for name in content.names():
            data, mode, mtime = content.files[name]
            target = os.path.join(temporary, name)
            if not os.path.isdir(os.path.dirname(target)):
                os.makedirs(os.path.dirname(target), mode=0o700)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
            with os.fdopen(fd, "wb") as handle:
                # Keys are 0600 whatever the archive says; the mode is set before the content lands.
                os.fchmod(handle.fileno(), 0o600 if name.endswith(".key") else mode & 0o777)
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.utime(target, (mtime, mtime))
        for name in sorted(content.dirs, reverse=True) + [""]:
            _fsync_directory(os.path.join(temporary, name))
        # rename(2) replaces an empty directory, and fails (changing nothing) if one appeared meanwhile.
        os.rename(temporary, path)
    except OSError as exc:
        shutil.rmtree(temporary, ignore_errors=True)
        raise PKIError("%s: could not be restored (%s); %s" % (path, exc, NOTHING_CHANGED))
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    _fsync_directory(parent)


def _fsync_directory(directory):
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
