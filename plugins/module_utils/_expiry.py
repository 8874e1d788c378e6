# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Expiry monitoring: when does each certificate and CRL nginx reads run out.

:func:`scan` reads files and directories into items, one per certificate and CRL, each with a
status; a file that cannot be read is an item too, never an exception. :func:`metrics_text`
renders the items for node_exporter's textfile collector and :func:`write_metrics` replaces the
metrics file atomically, reporting a change only when more than the check timestamp differs.
"""

import datetime
import fnmatch
import math
import os
import stat

from ._check import Problems, _looks_der, _read
from ._crypto import PKIError, crl_next_update, is_ca, not_after, pem_blocks, utcnow
from ._files import atomic_write, read_file

try:
    from cryptography import x509
except ImportError:  # reported by require_cryptography()
    pass

# Where the tier roles install their files: /etc/nginx/mtls/<config name>/...
DEFAULT_DIR = "/etc/nginx/mtls"
PATTERNS = ("*.pem", "*.crl")
# Never opened: private keys and nginx's ssl_password_file / proxy_ssl_password_file.
SKIPPED = ("*.key", "*.pass")
STATUSES = ("ok", "warning", "critical")
DAY = 86400
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)

CERT_METRIC = "mtls_nginx_certificate_expiry_timestamp_seconds"
CRL_METRIC = "mtls_nginx_crl_next_update_timestamp_seconds"
CHECK_METRIC = "mtls_nginx_expiry_last_check_timestamp_seconds"
ERROR_METRIC = "mtls_nginx_expiry_file_error"
HELP = {
    CERT_METRIC: "End of validity (notAfter) of each certificate and CA certificate in the files nginx reads, as Unix time.",
    CRL_METRIC: "Next update of each CRL in the files nginx reads, as Unix time; nginx rejects every client once it passes.",
    CHECK_METRIC: "When mtls.nginx.certificate_expiry last read the files, as Unix time.",
    ERROR_METRIC: "1 when a file nginx reads could not be read or parsed (nginx would refuse it too), else 0.",
}


def find_files(paths):
    """(files, roots, problems): the files to read, in order and without repeats; the
    directories walked; (path, message) for each path that cannot be. Directories give their
    ``*.pem`` and ``*.crl`` files, recursively; private keys and password files are never read."""
    files, roots, problems = [], [], []
    for path in paths:
        path = os.path.normpath(path)
        if os.path.isdir(path):
            roots.append(path)

            def walk_error(exc, path=path):
                problems.append((exc.filename or path, "cannot be listed: %s" % (exc.strerror or exc)))

            for directory, subdirs, names in os.walk(path, onerror=walk_error):
                subdirs.sort()
                files.extend(os.path.join(directory, name) for name in sorted(names)
                             if any(fnmatch.fnmatch(name, p) for p in PATTERNS))
        elif os.path.lexists(path):
            files.append(path)
        else:
            problems.append((path, "no such file or directory"))
    seen = set()
    files = [f for f in files if not (f in seen or seen.add(f))]
    return [f for f in files if not any(fnmatch.fnmatch(os.path.basename(f), p) for p in SKIPPED)], roots, problems


def tier_of(path, roots=()):
    """The directory right below /etc/nginx/mtls (or below a walked directory) that holds ``path``:
    the tier's config name such as ``mtls-upstream``; "" for a file directly in it or elsewhere."""
    for root in (DEFAULT_DIR,) + tuple(roots):
        parts = os.path.relpath(path, root).split(os.sep)
        if len(parts) > 1 and parts[0] != os.pardir:
            return parts[0]
    return ""


def status_of(seconds_left, warning_days, critical_days):
    """``critical`` once expired or within ``critical_days``, ``warning`` within ``warning_days``
    (both inclusive), else ``ok``; no end (a CRL without nextUpdate) is ``ok``."""
    if seconds_left is None:
        return "ok"
    if seconds_left <= 0 or seconds_left <= critical_days * DAY:
        return "critical"
    if seconds_left <= warning_days * DAY:
        return "warning"
    return "ok"


def _item(path, tier, kind, subject, serial, end, now, thresholds):
    seconds_left = None if end is None else int(math.floor((end - now).total_seconds()))
    return {
        "path": path,
        "tier": tier,
        "kind": kind,
        "subject": subject,
        "serial": serial,
        "not_after": None if end is None else end.isoformat(),
        "seconds_left": seconds_left,
        "days_left": None if seconds_left is None else round(seconds_left / float(DAY), 1),
        "status": status_of(seconds_left, *thresholds[kind == "crl"]),
    }


def _error_item(path, tier, problem):
    """A file nginx would refuse: critical, with ``error`` naming the file and the problem."""
    return {
        "path": path,
        "tier": tier,
        "kind": "crl" if path.endswith(".crl") else "certificate",
        "subject": "",
        "serial": None,
        "not_after": None,
        "seconds_left": None,
        "days_left": None,
        "status": "critical",
        "error": problem if problem.startswith(path + ": ") else "%s: %s" % (path, problem),
    }


def read_file_items(path, tier, now, thresholds):
    """Items for every certificate and CRL of one file; one error item when nginx would refuse
    the file; none for a file that holds only private keys."""
    if os.path.exists(path) and not os.path.isfile(path):
        # Opening a FIFO would block the module.
        return [_error_item(path, tier, "is not a regular file")]
    problems = Problems()
    data = _read(path, "certificate or CRL", problems)
    if data is None:
        return [_error_item(path, tier, problems[0])]
    if _looks_der(data):
        return [_error_item(path, tier, "is DER (binary); nginx reads only PEM")]
    blocks = pem_blocks(data)
    broken = [str(b) for b in blocks if b.problem]
    if broken:
        return [_error_item(path, tier, "; ".join(broken))]
    labels = [b.label for b in blocks]
    if labels and all(label.endswith("PRIVATE KEY") for label in labels):
        return []
    items, seen = [], set()
    for block in blocks:
        # The same certificate or CRL twice in one file is reported once.
        if block.label not in ("CERTIFICATE", "X509 CRL") or block.der in seen:
            continue
        seen.add(block.der)
        try:
            if block.label == "CERTIFICATE":
                cert = x509.load_der_x509_certificate(block.der)
                items.append(_item(path, tier, "ca" if is_ca(cert) else "certificate", cert.subject.rfc4514_string(),
                                   format(cert.serial_number, "X"), not_after(cert), now, thresholds))
            else:
                crl = x509.load_der_x509_crl(block.der)
                items.append(_item(path, tier, "crl", crl.issuer.rfc4514_string(), None, crl_next_update(crl),
                                   now, thresholds))
        except ValueError as exc:
            what = "certificate" if block.label == "CERTIFICATE" else "CRL"
            return [_error_item(path, tier, "PEM block %d (%s) is a corrupt %s (%s)" % (block.number, block.label, what, exc))]
    if not items:
        return [_error_item(path, tier, "holds no PEM certificate or CRL (found: %s)"
                            % (", ".join(sorted(set(labels))) or "no PEM block"))]
    return items


def sort_key(item):
    """Unreadable files first, then soonest end first; CRLs without a next update last."""
    left = item.get("seconds_left")
    return (0 if item.get("error") else 1 if left is not None else 2,
            left if left is not None else 0, item.get("path") or "", item.get("subject") or "", item.get("serial") or "")


def scan(paths, warning_days=30, critical_days=7, crl_warning_days=2, crl_critical_days=1, now=None):
    """Items for every certificate and CRL in ``paths`` (files or directories), sorted by :func:`sort_key`."""
    now = now or utcnow()
    thresholds = {False: (warning_days, critical_days), True: (crl_warning_days, crl_critical_days)}
    files, roots, problems = find_files(paths)
    items = [_error_item(path, tier_of(path, roots), problem) for path, problem in problems]
    for path in files:
        items.extend(read_file_items(path, tier_of(path, roots), now, thresholds))
    return sorted(items, key=sort_key)


def describe_item(item):
    """``path: subject (N days left)``, as the critical and warning lists show an item."""
    if item.get("error"):
        return item["error"]
    subject = ("CRL of %s" % item["subject"]) if item["kind"] == "crl" else item["subject"]
    if item["seconds_left"] is None:
        when = "no next update"
    elif item["seconds_left"] <= 0:
        when = "%s %.1f days ago" % ("next update passed" if item["kind"] == "crl" else "expired", -item["days_left"])
    else:
        when = "%.1f days left" % item["days_left"]
    return "%s: %s (%s)" % (item["path"], subject, when)


def summary(items):
    """(worst status, critical descriptions, warning descriptions)."""
    worst = max((STATUSES.index(i["status"]) for i in items), default=0)
    return (STATUSES[worst],
            [describe_item(i) for i in items if i["status"] == "critical"],
            [describe_item(i) for i in items if i["status"] == "warning"])


# --- Prometheus textfile metrics --------------------------------------------------------------

def escape_label(value):
    """A label value as the text exposition format quotes it: backslash, double quote, newline."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text):
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _series(name, labels, value):
    inner = ",".join('%s="%s"' % (key, escape_label(val)) for key, val in labels)
    return "%s{%s} %d" % (name, inner, value) if labels else "%s %d" % (name, value)


def _unix_time(iso):
    return int((datetime.datetime.fromisoformat(iso) - EPOCH).total_seconds())


def metrics_text(items, now=None):
    """The textfile collector file for ``items``: one series per distinct label set, families
    without samples left out, samples sorted so an unchanged host renders unchanged text."""
    now = now or utcnow()
    families = dict((name, {}) for name in HELP)
    for item in items:
        families[ERROR_METRIC][(("file", item["path"]),)] = max(
            families[ERROR_METRIC].get((("file", item["path"]),), 0), 1 if item.get("error") else 0)
        if item.get("error") or item["not_after"] is None:
            continue
        if item["kind"] == "crl":
            name, labels = CRL_METRIC, (("tier", item["tier"]), ("file", item["path"]), ("issuer", item["subject"]))
        else:
            name, labels = CERT_METRIC, (("tier", item["tier"]), ("file", item["path"]), ("kind", item["kind"]),
                                         ("subject", item["subject"]), ("serial", item["serial"]))
        # Two CRLs of one issuer (or certificates alike in every label) in one file: the earliest counts.
        value = _unix_time(item["not_after"])
        families[name][labels] = min(families[name].get(labels, value), value)
    families[CHECK_METRIC] = {(): int((now - EPOCH).total_seconds())}
    lines = []
    for name in (CERT_METRIC, CRL_METRIC, ERROR_METRIC, CHECK_METRIC):
        if families[name]:
            lines.append("# HELP %s %s" % (name, _escape_help(HELP[name])))
            lines.append("# TYPE %s gauge" % name)
            lines.extend(_series(name, labels, value) for labels, value in sorted(families[name].items()))
    return "\n".join(lines) + "\n"


def _without_check_time(text):
    """The metrics text minus the check timestamp sample, which differs on every run."""
    return [line for line in text.splitlines() if not line.startswith(CHECK_METRIC + " ")]


class MetricsError(Exception):
    """The metrics file could not be written; the message names it."""


def write_metrics(path, text, check_mode=False, mode=0o644):
    """Replace ``path`` with ``text``: a temporary file in the same directory (node_exporter
    reads only ``*.prom``, so never the half-written one), fsync, rename. Written on every run
    but check mode, so the check timestamp stays fresh; returns (changed, before, after), where
    changed means more than the timestamp differs, or the mode, or the file is new."""
    path = os.path.abspath(path)
    try:
        old = read_file(path)
    except PKIError as exc:
        raise MetricsError(str(exc))
    except OSError as exc:
        raise MetricsError("%s: cannot be read: %s" % (path, exc.strerror or exc))
    old_text = None if old is None else old.decode("utf-8", "replace")
    changed = old_text is None or _without_check_time(old_text) != _without_check_time(text)
    if old is not None and stat.S_IMODE(os.stat(path).st_mode) != mode:
        changed = True
    if check_mode:
        return changed, old_text, text
    directory = os.path.dirname(path)
    try:
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
            os.chmod(directory, 0o755)
        atomic_write(path, text.encode("utf-8"), mode)
    except OSError as exc:
        raise MetricsError("%s: cannot be written: %s" % (path, exc.strerror or exc))
    return changed, old_text, text


def check_options(warning_days, critical_days, crl_warning_days, crl_critical_days):
    """Messages for thresholds that make no sense; empty when they are good."""
    problems = []
    for name, value in (("warning_days", warning_days), ("critical_days", critical_days),
                        ("crl_warning_days", crl_warning_days), ("crl_critical_days", crl_critical_days)):
        if value < 0:
            problems.append("%s must be 0 or more, not %d" % (name, value))
    for warn, crit, prefix in ((warning_days, critical_days, ""), (crl_warning_days, crl_critical_days, "crl_")):
        if warn < crit:
            problems.append("%swarning_days (%d) must not be smaller than %scritical_days (%d)"
                            % (prefix, warn, prefix, crit))
    return problems
