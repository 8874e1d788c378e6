# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The identity of a caller's certificate as nginx's variables give it, computed once.

nginx computes $ssl_client_escaped_cert (the PEM, URL-escaped), $ssl_client_s_dn,
$ssl_client_i_dn and $ssl_client_serial again for every request on a kept-alive connection. For
the certificates its declared callers hold, which the CA's ledger knows, the upstream tier gets
the same values written into its config, in maps keyed by $ssl_client_fingerprint (the SHA-1 of
the certificate nginx has just verified): the per-request work for a known caller becomes a hash
lookup, and any other certificate falls back to the computed variables.

A lookup cannot give a certificate another's identity: its key is the whole certificate's digest,
computed by nginx from the certificate the handshake verified, and its values are computed from
that same certificate; a certificate the map does not hold (a new caller, one rotated since the
config was written, a certificate of a CA brought by the user) gets nginx's own values. The
values are byte for byte what nginx computes (a test compares every header both ways); a
certificate whose names this code cannot render exactly as OpenSSL does (anything but printable
ASCII) is left out, to the fallback.
"""

from __future__ import annotations

import re

# nginx's ngx_escape_uri(NGX_ESCAPE_URI_COMPONENT): letters, digits and -._~!'()* stay, every
# other byte becomes %XX (upper-case hex).
_KEPT = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!'()*")
_PRINTABLE = re.compile(r"^[\x20-\x7e]*\Z")


def escaped_pem(pem):
    """$ssl_client_escaped_cert for the certificate ``pem`` (PEM text, as OpenSSL writes it)."""
    return "".join(chr(byte) if byte in _KEPT else "%%%02X" % byte for byte in pem.encode("ascii"))


def serial_hex(serial_number):
    """$ssl_client_serial: the serial's bytes in upper-case hex, two digits each."""
    text = format(serial_number, "X")
    return "0" + text if len(text) % 2 else text


def fingerprint_sha1(cert):
    """$ssl_client_fingerprint: the SHA-1 of the certificate (DER), lower-case hex."""
    from cryptography.hazmat.primitives import hashes

    return cert.fingerprint(hashes.SHA1()).hex()  # nosec - nginx's key, not a signature


def identity(pem):
    """The nginx variables of the certificate ``pem`` as ``{fingerprint, certificate, subject_dn,
    issuer_dn, serial}``, or None when they cannot be written exactly (names outside printable
    ASCII) or into an nginx config string (a quote or backslash in a name)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
    subject, issuer = cert.subject.rfc4514_string(), cert.issuer.rfc4514_string()
    for name in (subject, issuer):
        if not _PRINTABLE.match(name) or '"' in name or "\\" in name or "$" in name or "{" in name:
            return None
    return {
        "fingerprint": fingerprint_sha1(cert),
        "certificate": escaped_pem(cert.public_bytes(serialization.Encoding.PEM).decode("ascii")),
        "subject_dn": subject,
        "issuer_dn": issuer,
        "serial": serial_hex(cert.serial_number),
    }


def identity_map(issued, callers):
    """The identities of the certificates in ``issued`` (valid entries of the CA's ledger, each
    with ``host``, ``tier`` and ``pem``) that the tiers in ``callers`` (each ``host`` and config
    ``name``) hold, sorted by fingerprint."""
    wanted = {(caller.get("host"), caller.get("name")) for caller in callers or []}
    found = {}
    for entry in issued or []:
        if (entry.get("host"), entry.get("tier")) in wanted and entry.get("pem"):
            values = identity(entry["pem"])
            if values:
                found[values["fingerprint"]] = values
    return [found[key] for key in sorted(found)]


# The nginx variable each looked-up value stands in for, and the key of identity() that holds it.
_FIELDS = (("cert", "$ssl_client_escaped_cert", "certificate"), ("s_dn", "$ssl_client_s_dn", "subject_dn"),
           ("i_dn", "$ssl_client_i_dn", "issuer_dn"), ("serial", "$ssl_client_serial", "serial"))


def nginx_maps(tier, entries):
    """The file an upstream tier's config includes: one map per identity value, keyed by
    $ssl_client_fingerprint, whose default is nginx's own variable."""
    lines = ["# Managed by the mtls.nginx collection: the identity of the certificates the declared callers",
             "# of the upstream tier %s hold, as nginx computes it, computed once from the CA's ledger" % tier["name"],
             "# (mtls.nginx.identity_map). A known caller's values are a lookup by the fingerprint of the",
             "# certificate the handshake verified; any other certificate gets nginx's own values.",
             "# %d known certificate(s)." % len(entries)]
    for field, variable, key in _FIELDS:
        lines.append("map $ssl_client_fingerprint $__mtls_u_%s_%s {" % (field, tier["vid"]))
        lines.append("    default %s;" % variable)
        lines.extend('    %s "%s";' % (entry["fingerprint"], entry[key]) for entry in entries)
        lines.append("}")
    return "\n".join(lines) + "\n"


def gate_callers(tier, revoked):
    """Whom the rotation gate of the upstream tier ``tier`` (its record) asks, given the tiers
    ``revoked`` in the CA's ledger (each ``host`` and ``tier``, from :func:`_rollover.revoked_tiers`;
    None: the ledger was not read): a dict with ``probes``, the callers that send the gate's
    request, and ``passed_over``, the labels of the callers passed over.

    The callers its record names in ``rotate_probe_from`` are asked as named. Otherwise the first
    caller that the ledger does not hold revoked: a caller whose certificates were revoked by host
    or service, and not rotated since, is refused by the tier's CRL whatever the new certificate,
    so it is passed over for the next. With none left, the gate checks the certificate served from
    the tier's own host, as for a tier nobody calls. A caller the ledger knows nothing of (its own
    certificate files, or a name nothing was issued for) is asked: its failure fails the gate."""
    rotate = tier.get("rotate") or {}
    if revoked is None or rotate.get("probe_from") is not None:
        return {"probes": list(rotate.get("probes") or []), "passed_over": []}
    cut = {(entry.get("host"), entry.get("tier")) for entry in revoked}
    probes, passed = [], []
    for caller in tier.get("callers") or []:
        if (caller.get("host"), caller.get("name")) in cut:
            passed.append(caller.get("label") or "%s on %s" % (caller.get("name"), caller.get("host")))
            continue
        probes.append(caller)
        break
    return {"probes": probes, "passed_over": passed}


def known_callers_files(tiers, issued):
    """For each upstream tier of ``tiers`` (records), the file of its known callers' maps, as
    mtls.nginx.files takes it: from the valid certificates ``issued`` that its callers hold, or
    none when the tier looks nothing up (known_callers false)."""
    found = []
    for tier in tiers or []:
        if tier.get("kind") != "upstream":
            continue
        entries = identity_map(issued, tier.get("callers")) if tier.get("known_callers", True) else []
        found.append({"path": tier["files"]["known_callers"], "content": nginx_maps(tier, entries),
                      "owner": "root", "group": "root", "mode": "0644"})
    return found
