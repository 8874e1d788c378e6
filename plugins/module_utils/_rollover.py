# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller's side of a CA rollover: which CA generation signs, which is coming and which
is retiring, kept as files beside each other in the PKI directory.

    <stem>.*            the CA that signs now (stems: ca, and intermediate when there is one)
    <stem>-next.*       the coming CA, made by phase 1 (distribute)
    <stem>-previous.*   the retiring CA, from phase 2 (reissue) until phase 3 (retire)
    archive/generation-N/<stem>.*   a retired CA, kept (never deleted)
    generation          how many CAs have signed so far (1 before the first rollover)
"""

import os

from ._crypto import PKIError

# Every file a CA of the mtls.nginx.pki role has: certificate, key, CRL, certificate+parents.
EXTENSIONS = (".pem", ".key", ".crl", "-chain.pem")


def revoked_tiers(entries):
    """The tiers (``host`` and ``tier``, its config name) for which the ledger ``entries`` hold a
    revoked certificate and no valid one, sorted."""
    valid = {(e.get("host"), e.get("tier")) for e in entries if e.get("status") == "valid"}
    revoked = {(e.get("host"), e.get("tier")) for e in entries
               if e.get("status") == "revoked" and e.get("host") and e.get("tier")}
    return [{"host": host, "tier": tier} for host, tier in sorted(revoked - valid)]


def read_generation(directory):
    path = os.path.join(directory, "generation")
    try:
        with open(path) as handle:
            text = handle.read().strip()
    except FileNotFoundError:
        return 1
    if not text.isdigit() or int(text) < 1:
        raise PKIError("%s: holds %r, not a generation number (1 or more)" % (path, text))
    return int(text)


class Rollover:
    """Phase 2 (promote) and phase 3 (retire) of a CA rollover: file moves, checked first."""

    def __init__(self, directory, stems, check_mode=False):
        if not os.path.isdir(directory):
            raise PKIError("%s: PKI directory not found" % directory)
        unknown = [s for s in stems if s not in ("ca", "intermediate")]
        if unknown or "ca" not in stems:
            raise PKIError("stems must name ca and optionally intermediate, not %s" % ", ".join(stems))
        self.directory = directory
        self.stems = list(stems)
        self.check_mode = check_mode
        self.moves = []

    def _path(self, stem, suffix, extension):
        return os.path.join(self.directory, stem + suffix + extension)

    def _exists(self, stem, suffix):
        return os.path.exists(self._path(stem, suffix, ".pem"))

    def _require(self, suffix, what):
        for stem in self.stems:
            for extension in (".pem", ".key"):
                if not os.path.exists(self._path(stem, suffix, extension)):
                    raise PKIError("%s: missing, %s" % (self._path(stem, suffix, extension), what))

    def promote(self):
        """The coming CA signs from now on; the signing one becomes the retiring one."""
        generation = read_generation(self.directory)
        coming, retiring = self._exists("ca", "-next"), self._exists("ca", "-previous")
        if retiring and not coming:
            return self._result(generation, "already promoted: %s signs, %s waits for phase 3 (retire)"
                                % (self._path("ca", "", ".pem"), self._path("ca", "-previous", ".pem")))
        if retiring:
            previous, coming_path = self._path("ca", "-previous", ".pem"), self._path("ca", "-next", ".pem")
            raise PKIError("%s: a CA of an earlier rollover has not been retired; run phase 3 (retire) of that "
                           "rollover before promoting %s" % (previous, coming_path))
        if not coming:
            raise PKIError("%s: no coming CA; run phase 1 (distribute) first" % self._path("ca", "-next", ".pem"))
        self._require("-next", "phase 1 (distribute) made only part of the coming CA")
        self._require("", "the signing CA is incomplete")
        for stem in self.stems:
            for extension in EXTENSIONS:
                if os.path.exists(self._path(stem, "", extension)):
                    self._move(self._path(stem, "", extension), self._path(stem, "-previous", extension))
            for extension in EXTENSIONS:
                if os.path.exists(self._path(stem, "-next", extension)):
                    self._move(self._path(stem, "-next", extension), self._path(stem, "", extension))
        self._write_generation(generation + 1)
        return self._result(generation + 1, "promoted: generation %d signs" % (generation + 1))

    def retire(self):
        """The retiring CA leaves the trust bundles: its files move to the archive."""
        generation = read_generation(self.directory)
        if self._exists("ca", "-next"):
            raise PKIError("%s: phase 2 (reissue) has not run yet; retiring now would leave hosts with "
                           "certificates that no peer trusts" % self._path("ca", "-next", ".pem"))
        if not self._exists("ca", "-previous"):
            return self._result(generation, "nothing to retire: no %s" % self._path("ca", "-previous", ".pem"))
        archive = os.path.join(self.directory, "archive", "generation-%d" % (generation - 1))
        if os.path.exists(archive) and os.listdir(archive):
            raise PKIError("%s: already holds an archived CA; move it away before retiring another into it" % archive)
        if not self.check_mode:
            os.makedirs(archive, mode=0o700, exist_ok=True)
        for stem in self.stems + [s for s in ("intermediate",) if s not in self.stems]:
            for extension in EXTENSIONS:
                source = self._path(stem, "-previous", extension)
                if os.path.exists(source):
                    self._move(source, os.path.join(archive, stem + extension))
        return self._result(generation, "retired generation %d into %s" % (generation - 1, archive))

    def _move(self, source, target):
        self.moves.append({"from": source, "to": target})
        if not self.check_mode:
            os.rename(source, target)

    def _write_generation(self, generation):
        path = os.path.join(self.directory, "generation")
        self.moves.append({"from": None, "to": path})
        if not self.check_mode:
            from ._files import atomic_write

            atomic_write(path, b"%d\n" % generation, 0o600)

    def _result(self, generation, state):
        return {"changed": bool(self.moves), "generation": generation, "state": state, "moves": self.moves}


def _read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def read_state(directory, intermediate=False, make_next=False):
    """What the tiers and the playbooks need to know of the CA directory ``directory``, read where
    the CA is (the controller or the CA host): its generations (oldest first: the retiring one, the
    one that signs, the coming one), the serials revoked by hand in ``revoked.txt``, the bundle of CA
    certificates every host trusts, the bundle of CRLs of every CA that issues host certificates
    (``intermediate``: an issuing intermediate below each root), the signing CA's chain, and the
    serials its ledger knows. ``make_next``: phase 1 of a rollover makes the coming CA now.
    Nothing is written; a file not made yet is left out of its bundle."""
    generation = read_generation(directory) if os.path.isdir(directory) else 1
    generations = []
    if os.path.exists(os.path.join(directory, "ca-previous.pem")):
        generations.append({"suffix": "-previous", "generation": generation - 1})
    generations.append({"suffix": "", "generation": generation})
    if make_next or os.path.exists(os.path.join(directory, "ca-next.pem")):
        generations.append({"suffix": "-next", "generation": generation + 1})
    stems = ["ca"] + (["intermediate"] if intermediate else [])
    suffixes = [item["suffix"] for item in generations]

    def bundle(names):
        found = [_read(os.path.join(directory, name)) for name in names]
        return "\n".join(text.strip() for text in found if text) + "\n" if any(found) else ""

    revoked_text = _read(os.path.join(directory, "revoked.txt")) or ""
    revoked = [line.split("#", 1)[0].strip().upper() for line in revoked_text.splitlines()]
    issuer = "intermediate-chain.pem" if intermediate else "ca.pem"
    from ._ledger import LEDGER_FILE, Ledger

    ledger = Ledger(os.path.join(directory, LEDGER_FILE))
    return {
        "exists": os.path.exists(os.path.join(directory, "ca.pem")),
        "generation": generation,
        "generations": generations,
        "has_next": os.path.exists(os.path.join(directory, "ca-next.pem")),
        "has_previous": os.path.exists(os.path.join(directory, "ca-previous.pem")),
        "revoked_file_serials": [serial for serial in revoked if serial],
        "anchor_bundle": bundle(["ca%s.pem" % suffix for suffix in suffixes]),
        "crl_bundle": bundle(["%s%s.crl" % (stem, suffix) for stem in stems for suffix in suffixes]),
        "issuer_chain": _read(os.path.join(directory, issuer)) or "",
        "issuer_path": os.path.join(directory, issuer),
        "certificates": {name: _read(os.path.join(directory, name)) or ""
                         for name in ("ca-next.pem", "ca-previous.pem", "intermediate-previous.pem")},
        "ledger_serials": sorted(entry["serial"] for entry in ledger.entries),
        # The valid certificates the CA issued (public), for the upstream tiers' known callers.
        "issued": [{"host": entry.get("host", ""), "tier": entry.get("tier", ""), "pem": entry["pem"]}
                   for entry in ledger.entries if entry["status"] == "valid" and entry.get("pem")],
        # The tiers (host and config name) whose certificates the ledger holds revoked, with none
        # valid: revoked by host or service and not rotated since (the rotation gate passes them over).
        "revoked_tiers": revoked_tiers(ledger.entries),
    }
