# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: expiry_table
short_description: One table of the certificates and CRLs of many hosts, soonest expiry first
version_added: 0.1.0
author:
  - mtls.nginx contributors (@mtls-nginx)
description:
  - Takes the results of M(mtls.nginx.certificate_expiry) by host and returns the lines of one
    table across all hosts, with the columns host, file, subject, expiry, days left and status,
    sorted by days left, least first. Unreadable files come first, CRLs without a next update
    last.
  - A host without a result (null, or the registered result of a task that failed, was skipped
    or found the host unreachable) is a row of status V(critical) saying so, so that no host
    drops out of the report unseen.
  - For a CRL the subject column shows C(CRL of) its issuer; for an unreadable file, the error.
positional: _input
options:
  _input:
    description:
      - A dict from host name to that host's registered M(mtls.nginx.certificate_expiry) result
        (failed, skipped and unreachable ones too), or to its
        RV(mtls.nginx.certificate_expiry#module:items) list, or to null when the host has no result.
    type: dict
    required: true
  statuses:
    description: Show only the rows of these statuses (V(ok), V(warning), V(critical)); all rows when omitted.
    type: list
    elements: str
  header:
    description: Start with the column names and a rule under them.
    type: bool
    default: true
seealso:
  - module: mtls.nginx.certificate_expiry
"""

EXAMPLES = r"""
- name: Print one table across all hosts of the play
  vars:
    __results: "{{ dict(ansible_play_hosts_all | zip(ansible_play_hosts_all | map('extract', hostvars, 'expiry'))) }}"
  ansible.builtin.debug:
    msg: "{{ __results | mtls.nginx.expiry_table }}"
  run_once: true

# HOST      FILE                                            SUBJECT           EXPIRY (UTC)      DAYS LEFT  STATUS
# --------  ----------------------------------------------  ----------------  ----------------  ---------  --------
# orders-1  /etc/nginx/mtls/mtls-upstream/server.pem        CN=orders         2025-07-01 12:00        3.2  critical
# orders-1  /etc/nginx/mtls/mtls-upstream/client-ca.crl     CRL of CN=MyCA    2025-06-29 08:00        5.0  ok

- name: Only what is critical, without the header, to name it in a failure
  ansible.builtin.assert:
    that: (__results | mtls.nginx.expiry_table(statuses=['critical'], header=false)) | length == 0
    fail_msg: "{{ __results | mtls.nginx.expiry_table(statuses=['critical']) }}"
"""

RETURN = r"""
_value:
  description: The lines of the table, columns aligned with spaces; only the header when there are no rows.
  type: list
  elements: str
"""

import datetime

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.collections import is_sequence

from ansible_collections.mtls.nginx.plugins.module_utils._expiry import STATUSES, sort_key

COLUMNS = ("HOST", "FILE", "SUBJECT", "EXPIRY (UTC)", "DAYS LEFT", "STATUS")
NO_RESULT = "the host failed or was unreachable"


def _expiry(item):
    if not item.get("not_after"):
        return "-"
    try:
        when = datetime.datetime.fromisoformat(item["not_after"]).astimezone(datetime.timezone.utc)
    except (TypeError, ValueError):
        return str(item["not_after"])
    return when.strftime("%Y-%m-%d %H:%M")


def _row(host, item):
    if item.get("error"):
        subject = "error: " + item["error"].split(": ", 1)[-1]
    elif item.get("kind") == "crl":
        subject = "CRL of " + (item.get("subject") or "")
    else:
        subject = item.get("subject") or ""
    days = item.get("days_left")
    status = item.get("status") or "critical"
    if item.get("seconds_left") is not None and item["seconds_left"] <= 0:
        status += ", expired"
    return (host, item.get("path") or "-", subject, _expiry(item), "-" if days is None else "%.1f" % days, status)


def _no_result(why):
    return [{"path": "-", "subject": "(no result: %s)" % why, "status": "critical", "no_result": True}]


def _items_of(host, result):
    if result is None:
        return _no_result(NO_RESULT)
    if isinstance(result, dict):
        if "items" not in result and (result.get("failed") or result.get("unreachable") or result.get("skipped")):
            # What register keeps of a task that did not run the check; Ansible has shown why.
            return _no_result("unreachable" if result.get("unreachable") else "skipped" if result.get("skipped")
                              else "failed")
        if "items" not in result:
            raise AnsibleFilterError("expiry_table: the result of %s has no items; is it a certificate_expiry result?" % host)
        result = result["items"]
    if not is_sequence(result):
        raise AnsibleFilterError("expiry_table: the result of %s is a %s, not a certificate_expiry result or items list"
                                 % (host, type(result).__name__))
    return result


def expiry_table(results, statuses=None, header=True):
    if not isinstance(results, dict):
        raise AnsibleFilterError("expiry_table expects a dict of host: certificate_expiry result, not %s"
                                 % type(results).__name__)
    if isinstance(statuses, str):
        statuses = [statuses]
    unknown = sorted(set(statuses or ()) - set(STATUSES))
    if unknown:
        raise AnsibleFilterError("expiry_table: unknown statuses %s; choose from %s" % (unknown, ", ".join(STATUSES)))
    rows = []
    for host, result in results.items():
        for item in _items_of(str(host), result):
            if statuses is None or item.get("status") in statuses:
                # Hosts without a result first, by name; then every item by time left.
                order = (0, str(host)) if item.get("no_result") else (1, sort_key(item), str(host))
                rows.append((order, _row(str(host), item)))
    rows.sort(key=lambda row: row[0])
    cells = [cells for order, cells in rows]
    if header:
        cells = [COLUMNS, tuple("-" * len(c) for c in COLUMNS)] + cells
    if not cells:
        return []
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    if header:
        cells[1] = tuple("-" * w for w in widths)
    lines = []
    for row in cells:
        # Days left are numbers: right-aligned, the other columns left-aligned.
        parts = [cell.rjust(w) if i == 4 else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(parts).rstrip())
    return lines


class FilterModule:
    def filters(self):
        return {"expiry_table": expiry_table}
