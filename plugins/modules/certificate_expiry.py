#!/usr/bin/python
# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: certificate_expiry
short_description: Report when the certificates and CRLs nginx reads expire, and write Prometheus metrics
version_added: 0.1.0
description:
  - Reads every certificate and CRL in O(paths) on the host the task runs on and reports, for
    each, how much time is left and a status, V(critical) when expired or within
    O(critical_days), V(warning) within O(warning_days), else V(ok). CRLs have thresholds of
    their own (O(crl_warning_days), O(crl_critical_days)), since they live days, not months, and an
    expired CRL makes nginx reject every client.
  - A file holding a chain or a CA bundle gives one item per certificate; a certificate that
    appears twice in one file is reported once.
  - A file nginx would refuse (missing, unreadable, DER, a PEM block cut short or corrupt, no
    certificate or CRL in it) is an item of status V(critical) with an C(error) naming the file
    and the problem. The module never fails because of what it finds, only on bad options or a
    metrics file it cannot write; the playbook decides what is fatal (the collection's
    C(mtls.nginx.check_expiry) playbook fails on any critical item).
  - With O(metrics_path), writes the result for node_exporter's textfile collector.
    The file is replaced atomically on every run but check mode, so that
    C(mtls_nginx_expiry_last_check_timestamp_seconds) tells how fresh it is. Because that
    timestamp differs on every run, the task reports C(changed) only when something else in
    the file differs (a certificate or CRL renewed, added or removed, a file broken or repaired),
    when the file is new, or when its mode was not C(0644). Run twice, the second run reports
    no change.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - mtls.nginx.attributes
  - mtls.nginx.cryptography
attributes:
  check_mode:
    details: Reads everything and reports what would change; writes no metrics file and creates no directory.
  diff_mode:
    details: Shows the metrics file before and after when it changes.
options:
  paths:
    description:
      - Files and directories to read. Directories are searched recursively for C(*.pem) and
        C(*.crl) files.
      - Private keys (C(*.key) files, and C(*.pem) files that hold only private keys) and
        C(*.pass) password files are skipped, never reported.
      - The tier of an item is the directory right below C(/etc/nginx/mtls), or below a
        directory given here, that holds its file (such as C(mtls-upstream)).
    type: list
    elements: path
    default: [/etc/nginx/mtls]
  warning_days:
    description: Certificates that expire within this many days (or sooner) are V(warning).
    type: int
    default: 30
  critical_days:
    description: Certificates that expire within this many days (or sooner), or have expired, are V(critical).
    type: int
    default: 7
  crl_warning_days:
    description:
      - CRLs whose next update is within this many days are V(warning).
      - The default is the P(mtls.nginx.pki#role) role's C(mtls_pki_crl_renew_before_days), so
        a warning means a renewal is due and no run has made it yet.
    type: int
    default: 2
  crl_critical_days:
    description:
      - CRLs whose next update is within this many days, or has passed, are V(critical); a CRL
        without a next update is V(ok).
      - The default allows one missed daily renewal of a CRL that P(mtls.nginx.pki#role) renews
        two days ahead; nginx rejects every client once the next update has passed.
    type: int
    default: 1
  metrics_path:
    description:
      - Where to write the metrics in the Prometheus text format, for node_exporter's textfile
        collector, which reads only C(*.prom) files from its directory
        (C(/var/lib/prometheus/node-exporter) with Debian's C(prometheus-node-exporter)).
      - Written with mode C(0644) through a temporary file in the same directory, synced to
        disk and renamed over the old file, so the collector never reads half a file. A missing
        parent directory is created with mode C(0755).
      - "Metrics, each a gauge: C(mtls_nginx_certificate_expiry_timestamp_seconds{tier,file,kind,subject,serial})
        (notAfter of certificates and CA certificates, Unix time),
        C(mtls_nginx_crl_next_update_timestamp_seconds{tier,file,issuer}) (CRLs with a next update),
        C(mtls_nginx_expiry_file_error{file}) (1 for a file nginx would refuse, 0 for one that reads) and
        C(mtls_nginx_expiry_last_check_timestamp_seconds)."
      - Not written when omitted.
    type: path
notes:
  - Run it with C(become), since the tier directories are readable by root only.
seealso:
  - module: mtls.nginx.certificate_check
  - name: Prometheus text exposition format
    description: The format of the metrics file.
    link: https://prometheus.io/docs/instrumenting/exposition_formats/
  - name: node_exporter textfile collector
    description: How node_exporter reads C(*.prom) files.
    link: https://github.com/prometheus/node_exporter#textfile-collector
author:
  - mtls.nginx contributors (@mtls-nginx)
"""

EXAMPLES = r"""
- name: Report what expires on this host (both tiers' directories under /etc/nginx/mtls)
  mtls.nginx.certificate_expiry:
  become: true
  register: expiry

- name: Fail when anything is expired, expiring within 7 days, or unreadable
  ansible.builtin.assert:
    that: expiry.worst != 'critical'
    fail_msg: "{{ expiry.critical }}"

- name: Write metrics for node_exporter's textfile collector, from a daily timer or cron job
  mtls.nginx.certificate_expiry:
    metrics_path: /var/lib/prometheus/node-exporter/mtls_nginx.prom
  become: true

- name: Check one tier's certificate and CRL with tighter thresholds
  mtls.nginx.certificate_expiry:
    paths:
      - /etc/nginx/mtls/mtls-upstream/server.pem
      - /etc/nginx/mtls/mtls-upstream/client-ca.crl
    warning_days: 14
    critical_days: 3
  become: true

- name: Check the controller's CA and its CRL
  mtls.nginx.certificate_expiry:
    paths:
      - ~/.mtls-nginx/pki/ca.pem
      - ~/.mtls-nginx/pki/ca.crl
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
items:
  description:
    - One per certificate and CRL found, and one per file that cannot be read, sorted by time
      left, least first; unreadable files come first and CRLs without a next update last.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The file.
      type: str
      sample: /etc/nginx/mtls/mtls-upstream/server.pem
    tier:
      description: The directory right below C(/etc/nginx/mtls) (or a directory in O(paths)) holding the file; empty otherwise.
      type: str
      sample: mtls-upstream
    kind:
      description: V(certificate), V(ca) (a CA certificate, as in a chain or CA bundle) or V(crl).
      type: str
      sample: certificate
    subject:
      description: Subject DN (RFC 4514); for a CRL, its issuer. Empty for an unreadable file.
      type: str
      sample: CN=orders.internal
    serial:
      description: Serial number, upper-case hexadecimal; null for CRLs and unreadable files.
      type: str
      sample: 3A0F9C21B7
    not_after:
      description: End of validity (ISO 8601, UTC); for a CRL its next update. Null for a CRL without one, and for an unreadable file.
      type: str
      sample: "2026-03-01T12:00:00+00:00"
    seconds_left:
      description: Seconds until RV(items[].not_after), negative once passed; null when there is none.
      type: int
      sample: 1728000
    days_left:
      description: Days until RV(items[].not_after), one decimal, negative once passed; null when there is none.
      type: float
      sample: 20.0
    status:
      description: V(ok), V(warning) or V(critical) (expired, within the critical days, or unreadable).
      type: str
      sample: warning
    error:
      description: The file and why nginx would refuse it.
      returned: for a file that cannot be read
      type: str
      sample: "/etc/nginx/mtls/mtls-proxy/client.pem: PEM block 2 (CERTIFICATE) is truncated: BEGIN without END"
worst:
  description: The worst status among the items; V(ok) when there are none.
  returned: always
  type: str
  sample: warning
critical:
  description: "The critical items, each as C(path: subject) then the days left in parentheses, and the errors of unreadable files."
  returned: always
  type: list
  elements: str
  sample: ["/etc/nginx/mtls/mtls-upstream/client-ca.crl: CRL of CN=mtls.nginx CA (0.4 days left)"]
warning:
  description: "The warning items, each as C(path: subject) then the days left in parentheses."
  returned: always
  type: list
  elements: str
  sample: ["/etc/nginx/mtls/mtls-upstream/server.pem: CN=orders.internal (20.0 days left)"]
metrics_path:
  description: The metrics file written (or that would be written in check mode).
  returned: when O(metrics_path) is set
  type: str
  sample: /var/lib/prometheus/node-exporter/mtls_nginx.prom
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mtls.nginx.plugins.module_utils._crypto import require_cryptography


def main():
    module = AnsibleModule(
        argument_spec=dict(
            paths=dict(type="list", elements="path", default=["/etc/nginx/mtls"]),
            warning_days=dict(type="int", default=30),
            critical_days=dict(type="int", default=7),
            crl_warning_days=dict(type="int", default=2),
            crl_critical_days=dict(type="int", default=1),
            metrics_path=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    require_cryptography(module)
    from ansible_collections.mtls.nginx.plugins.module_utils._expiry import (
        MetricsError, check_options, metrics_text, scan, summary, write_metrics)

    params = module.params
    thresholds = dict((k, params[k]) for k in ("warning_days", "critical_days", "crl_warning_days", "crl_critical_days"))
    problems = check_options(**thresholds)
    if not params["paths"]:
        problems.append("paths must name at least one file or directory")
    if problems:
        module.fail_json(msg="; ".join(problems))
    metrics_path = params["metrics_path"]
    if metrics_path and not metrics_path.endswith(".prom"):
        module.warn("metrics_path %s does not end in .prom; node_exporter's textfile collector will not read it"
                    % metrics_path)

    items = scan(params["paths"], **thresholds)
    worst, critical, warning = summary(items)
    result = dict(changed=False, items=items, worst=worst, critical=critical, warning=warning)
    if metrics_path:
        try:
            changed, before, after = write_metrics(metrics_path, metrics_text(items), module.check_mode)
        except MetricsError as exc:
            module.fail_json(msg=str(exc), **result)
        result.update(changed=changed, metrics_path=metrics_path)
        if changed:
            result["diff"] = {"before": before or "", "after": after,
                              "before_header": metrics_path, "after_header": metrics_path}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
