# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The CA's own record of what it signed: the issuance ledger, and the lock of the CA directory.

Every certificate the CA signs is written to the ledger in the same locked step as its
signature: serial, issuer, subject, names, the SHA-256 of its public key, the host and the tier
(and service) it was issued for, its validity, and its status: ``valid``, ``superseded`` (a newer
certificate for the same key replaced it) or ``revoked`` (with the reason and the time). Revoking
a host or a service reads the ledger, never a file on the host, so a compromised host cannot
choose what is revoked; signing refuses a public key that belongs to a revoked certificate, so a
revoked host comes back only with a new key.

Every operation that writes the CA's state (a signature, a revocation, a CRL, a rollover step)
holds the directory's lock for its whole read-modify-write (:func:`locked`); a run that cannot get
it within the timeout says who holds it (host, process, what runs, since when) and changes nothing.

The ledger is one JSON document, replaced atomically, so readers never see half of it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time

from ._crypto import PKIError, describe, not_after, not_before, public_key_bytes, sans_of, utcnow

LEDGER_FILE = "ledger.json"
LOCK_FILE = ".lock"
VERSION = 1
STATUSES = ("valid", "superseded", "revoked")
# RFC 5280's reasons, as the ledger and the CRL name them.
REASONS = ("unspecified", "keyCompromise", "cACompromise", "affiliationChanged", "superseded",
           "cessationOfOperation", "certificateHold", "privilegeWithdrawn", "aACompromise")


class LockTimeout(PKIError):
    pass


# The waits of this process for a lock another run held, for the module to report (waits()).
_WAITS = []


def waits():
    """Each wait of this process for the lock of a CA directory: ``{path, holder, seconds}``, where
    holder says who held the lock when this run found it taken."""
    return list(_WAITS)


def wait_messages():
    return ["waited %.1f s for the lock of %s, held by %s" % (wait["seconds"], wait["path"], wait["holder"])
            for wait in _WAITS]


def _holder(what):
    return {"host": socket.gethostname(), "pid": os.getpid(), "what": what or "mtls.nginx",
            "since": utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")}


@contextlib.contextmanager
def locked(directory, what=None, timeout=300.0, check_mode=False):
    """Hold the exclusive lock of the CA directory ``directory`` for the block. ``what`` says what
    holds it (a playbook, an operation), for whoever waits. After ``timeout`` seconds without the
    lock, :class:`LockTimeout` names the holder; nothing was read or written yet. In check mode
    nothing is written, so the lock is not taken (a reader sees whole files either way).

    The lock is the directory's own (flock), released by the kernel when its holder ends, however
    it ends; while it is held, the file .lock in the directory says who holds it, and it is gone
    once released, so a run leaves no trace of it."""
    if check_mode or not os.path.isdir(directory):
        yield None
        return
    holder_path = os.path.join(directory, LOCK_FILE)
    fd = os.open(directory, os.O_RDONLY)
    try:
        started = time.monotonic()
        deadline = started + max(float(timeout), 0.0)
        first_holder = None
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if first_holder is None:
                    first_holder = describe_holder(_read_holder(holder_path))
                if time.monotonic() >= deadline:
                    raise LockTimeout("%s is locked by %s; waited %ds for it, nothing was changed. Wait for that run "
                                      "to end (the lock is released with its process, however it ends)"
                                      % (directory, describe_holder(_read_holder(holder_path)), int(timeout)))
                time.sleep(0.2)
        if first_holder is not None:
            _WAITS.append({"path": directory, "holder": first_holder, "seconds": round(time.monotonic() - started, 1)})
        with open(holder_path, "w") as handle:
            handle.write(json.dumps(_holder(what)))
        try:
            yield holder_path
        finally:
            try:
                os.unlink(holder_path)
            except FileNotFoundError:
                pass
    finally:
        os.close(fd)  # releases the lock


def _read_holder(path):
    try:
        with open(path) as handle:
            return json.loads(handle.read() or "{}")
    except (OSError, ValueError):
        return {}


def describe_holder(holder):
    if not holder:
        return "another run (its details are not recorded)"
    return "%s on %s (pid %s) since %s" % (
        holder.get("what", "a run"), holder.get("host", "?"), holder.get("pid", "?"), holder.get("since", "?"))


def public_key_sha256(public_key):
    import hashlib

    return hashlib.sha256(public_key_bytes(public_key)).hexdigest()


def _iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class Ledger:
    """The ledger at ``path``: load it, query it, change it in memory, then :meth:`save`."""

    def __init__(self, path):
        self.path = path
        self.changed = False
        data = None
        if os.path.exists(path):
            try:
                with open(path, "rb") as handle:
                    data = json.loads(handle.read().decode("utf-8"))
            except (OSError, ValueError) as exc:
                raise PKIError("%s: the ledger cannot be read (%s); restore it from a backup" % (path, exc))
            if not isinstance(data, dict) or not isinstance(data.get("certificates"), list):
                raise PKIError("%s: not a ledger of mtls.nginx (no list of certificates)" % path)
            if data.get("version", VERSION) > VERSION:
                raise PKIError("%s: ledger version %s is newer than this collection reads (%d)"
                               % (path, data.get("version"), VERSION))
        self.entries = list((data or {}).get("certificates") or [])

    # --- reading -------------------------------------------------------------------------------

    def find(self, serial):
        serial = _serial(serial)
        for entry in self.entries:
            if entry["serial"] == serial:
                return entry
        return None

    def select(self, hosts=(), tiers=(), services=(), serials=(), statuses=()):
        """The entries of the given hosts, tiers (config names), services, serials and statuses;
        each empty criterion selects everything, and they combine."""
        serials = {_serial(serial) for serial in serials}

        def wanted(entry):
            return all((not hosts or entry.get("host") in hosts, not tiers or entry.get("tier") in tiers,
                        not services or entry.get("service") in services, not serials or entry["serial"] in serials,
                        not statuses or entry["status"] in statuses))

        return [entry for entry in self.entries if wanted(entry)]

    def revoked_keys(self):
        """The revoked entries by the SHA-256 of their public key."""
        return {entry["public_key_sha256"]: entry for entry in self.entries
                if entry["status"] == "revoked" and entry.get("public_key_sha256")}

    def revoked_serials(self):
        return sorted(entry["serial"] for entry in self.entries if entry["status"] == "revoked")

    def refuse_revoked_key(self, public_key, asked_for=""):
        """Raise when ``public_key`` belongs to a revoked certificate: only a new key comes back."""
        entry = self.revoked_keys().get(public_key_sha256(public_key))
        if entry is not None:
            raise PKIError(
                "refusing to sign%s: its public key belongs to certificate %s (%s%s), revoked %s (%s)%s. A revoked "
                "key is never signed again; only a new key brings the host back (mtls.nginx.rotate)"
                % (" for " + asked_for if asked_for else "", entry["serial"], entry.get("tier") or "no tier",
                   " on " + entry["host"] if entry.get("host") else "", entry.get("revoked_at", "?"),
                   entry.get("reason", "unspecified"), " by " + entry["revoked_by"] if entry.get("revoked_by") else ""))

    # --- writing -------------------------------------------------------------------------------

    def record(self, cert, host="", tier="", service="", now=None):
        """The entry of ``cert``, newly signed (or found), for ``host``'s tier ``tier``. Earlier valid
        certificates of the same tier and key are superseded: a renewal replaces them."""
        found = self.find(format(cert.serial_number, "X"))
        if found is not None:
            return found
        now = now or utcnow()
        key = public_key_sha256(cert.public_key())
        entry = {
            "serial": format(cert.serial_number, "X"),
            "issuer": cert.issuer.rfc4514_string(),
            "subject": cert.subject.rfc4514_string(),
            "subject_alt_names": sans_of(cert),
            "public_key_sha256": key,
            "host": host,
            "tier": tier,
            "service": service,
            "not_before": _iso(not_before(cert)),
            "not_after": _iso(not_after(cert)),
            "fingerprint_sha256": describe(cert)["fingerprint_sha256"],
            "signed_at": _iso(now),
            "status": "valid",
            # The certificate itself (public): the upstream tiers pre-compute the identity of
            # their callers' certificates from it (mtls.nginx.identity_map).
            "pem": _pem(cert),
        }
        for other in self.select(hosts=[host], tiers=[tier], statuses=["valid"]):
            if host and tier and other.get("public_key_sha256") == key:
                other.update(status="superseded", superseded_by=entry["serial"], superseded_at=_iso(now))
        self.entries.append(entry)
        self.changed = True
        return entry

    def revoke(self, entries, reason="unspecified", by="", now=None):
        """Revoke ``entries`` (of :meth:`select`); returns those that were not revoked before."""
        if reason not in REASONS:
            raise PKIError("reason must be one of %s, not %r" % (", ".join(REASONS), reason))
        now = now or utcnow()
        done = []
        for entry in entries:
            if entry["status"] == "revoked":
                continue
            entry.update(status="revoked", reason=reason, revoked_at=_iso(now))
            if by:
                entry["revoked_by"] = by
            done.append(entry)
        self.changed = self.changed or bool(done)
        return done

    def revoke_serials(self, serials, reason="unspecified", by="", now=None):
        """Revoke by serial; a serial the ledger does not know (a certificate signed by hand with the
        CA's key, or before the ledger existed) is recorded as revoked, with no more than its serial."""
        entries = []
        for serial in serials:
            serial = _serial(serial)
            entry = self.find(serial)
            if entry is None:
                entry = {"serial": serial, "status": "valid", "host": "", "tier": "", "service": "",
                         "recorded_at": _iso(now or utcnow()), "note": "not signed through the ledger"}
                self.entries.append(entry)
            entries.append(entry)
        return self.revoke(entries, reason, by, now)

    def save(self, writer, mode="0600"):
        """Write the ledger (atomically, through ``writer``) when it changed."""
        content = json.dumps({"version": VERSION, "certificates": self.entries}, indent=1, sort_keys=True).encode()
        # Public facts, but many: a diff names the file without showing it.
        return writer.write(self.path, content + b"\n", mode, secret="the issuance ledger")


def _serial(serial):
    text = str(serial).replace(":", "").strip().upper()
    if not text or any(char not in "0123456789ABCDEF" for char in text):
        raise PKIError("%r is not a certificate serial in hex" % (serial,))
    return text.lstrip("0") or "0"


def _pem(cert):
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def table(entries, statuses=(), now=None):
    """The ledger as lines of a table, valid certificates first, soonest expiry first: serial, status
    (and reason), host, tier, subject, expiry and days left."""
    now = now or utcnow()
    rows = []
    for entry in entries:
        if statuses and entry["status"] not in statuses:
            continue
        left = ""
        if entry.get("not_after"):
            import datetime

            expires = datetime.datetime.strptime(entry["not_after"], "%Y-%m-%dT%H:%M:%SZ").replace(
                tzinfo=datetime.timezone.utc)
            left = "%.1f" % ((expires - now).total_seconds() / 86400)
        status = entry["status"] + (" (%s)" % entry["reason"] if entry.get("reason") else "")
        rows.append((STATUSES.index(entry["status"]), entry.get("not_after") or "9999",
                     (entry["serial"], status, entry.get("host") or "-", entry.get("tier") or "-",
                      entry.get("subject") or "-", (entry.get("not_after") or "-")[:16].replace("T", " "), left or "-")))
    rows.sort(key=lambda row: (row[0], row[1]))
    header = ("SERIAL", "STATUS", "HOST", "TIER", "SUBJECT", "EXPIRY (UTC)", "DAYS LEFT")
    cells = [header] + [row[2] for row in rows]
    widths = [max(len(str(cell[i])) for cell in cells) for i in range(len(header))]
    return ["  ".join(str(cell).ljust(width) for cell, width in zip(line, widths)).rstrip() for line in cells]
