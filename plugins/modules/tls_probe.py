#!/usr/bin/python
# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: tls_probe
short_description: Open a real TLS connection, optionally presenting a client certificate
version_added: 0.1.0
description:
  - Connects to O(host):O(port) from the host the task runs on, performs a TLS handshake
    (TLS 1.2 or newer) that verifies the server against O(ca_path) and O(server_name) (sent as
    SNI), optionally presenting a client certificate, and reports what happened. It is
    C(openssl s_client -cert -key -CAfile -servername) as a module.
  - nginx completes the handshake even for a client without an acceptable certificate and
    answers the request with HTTP 400, so set O(http_path) to learn whether the client
    certificate was accepted. Under TLS 1.3 a refused certificate can also surface as an alert
    right after the handshake, which the probe waits for briefly.
  - The task fails when the outcome differs from O(expect), with the reason; it never changes anything.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - mtls.nginx.attributes.no_diff
  - mtls.nginx.cryptography
options:
  host:
    description: Address or name to connect to.
    type: str
    required: true
  port:
    description: TCP port.
    type: int
    default: 443
  server_name:
    description: Name sent as SNI and checked against the server certificate; the name is not checked when omitted.
    type: str
  ca_path:
    description: CA bundle (PEM) that must have issued the server certificate; the system store when omitted.
    type: path
  certificate_path:
    description: Client certificate (PEM, leaf then intermediates) to present.
    type: path
  privatekey_path:
    description: Private key of O(certificate_path); taken from O(certificate_path) when omitted.
    type: path
  verify:
    description: Verify the server certificate. Turn off only to inspect a server you do not trust yet.
    type: bool
    default: true
  http_path:
    description: After the handshake, send C(GET) for this path and report the HTTP status.
    type: str
  timeout:
    description: Seconds to wait for the connection and each read.
    type: float
    default: 10
  expect:
    description: The outcome the task succeeds on; C(failure) turns the probe into a check that something is refused.
    type: str
    default: success
    choices: [success, failure]
seealso:
  - module: mtls.nginx.certificate_check
author:
  - mtls.nginx contributors (@mtls-nginx)
"""

EXAMPLES = r"""
- name: The proxy host reaches the upstream tier with its client certificate
  mtls.nginx.tls_probe:
    host: orders-1.internal
    port: 8443
    server_name: orders.internal
    ca_path: /etc/nginx/mtls/mtls-proxy/upstream-ca.pem
    certificate_path: /etc/nginx/mtls/mtls-proxy/client.pem
    privatekey_path: /etc/nginx/mtls/mtls-proxy/client.key
    http_path: /
  become: true

- name: A certificate from another CA is refused
  mtls.nginx.tls_probe:
    host: orders-1.internal
    port: 8443
    server_name: orders.internal
    ca_path: /etc/nginx/mtls/mtls-proxy/upstream-ca.pem
    certificate_path: /tmp/stranger.pem
    privatekey_path: /tmp/stranger.key
    http_path: /
    expect: failure
"""

RETURN = r"""
accepted:
  description: The handshake succeeded and, with O(http_path), the HTTP status was below 400.
  returned: always
  type: bool
handshake:
  description: The TLS handshake itself completed.
  returned: always
  type: bool
error:
  description: Why the probe was not accepted; null when it was.
  returned: always
  type: str
  sample: "server certificate not accepted: Hostname mismatch, certificate is not valid for 'orders.internal'."
protocol:
  description: Negotiated protocol version.
  returned: always
  type: str
  sample: TLSv1.3
cipher:
  description: Negotiated cipher suite.
  returned: always
  type: str
  sample: TLS_AES_256_GCM_SHA384
peer_chain:
  description: >-
    Certificates the server sent (only its leaf on Python before 3.13), each with subject, issuer,
    serial, fingerprint_sha256, not_after, days_remaining, subject_alt_names.
  returned: always
  type: list
  elements: dict
http_status:
  description: HTTP status of the O(http_path) request; null without O(http_path).
  returned: always
  type: int
  sample: 200
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mtls.nginx.plugins.module_utils._crypto import require_cryptography


def main():
    module = AnsibleModule(
        argument_spec=dict(
            host=dict(type="str", required=True),
            port=dict(type="int", default=443),
            server_name=dict(type="str"),
            ca_path=dict(type="path"),
            certificate_path=dict(type="path"),
            privatekey_path=dict(type="path", no_log=False),
            verify=dict(type="bool", default=True),
            http_path=dict(type="str"),
            timeout=dict(type="float", default=10.0),
            expect=dict(type="str", default="success", choices=["success", "failure"]),
        ),
        required_by={"privatekey_path": "certificate_path"},
        supports_check_mode=True,
    )
    require_cryptography(module)
    from ansible_collections.mtls.nginx.plugins.module_utils._probe import probe

    params = dict(module.params)
    expect = params.pop("expect")
    result = probe(**params)
    if result["accepted"] != (expect == "success"):
        msg = ("TLS probe of %s:%s: %s" % (params["host"], params["port"], result["error"]) if expect == "success"
               else "TLS probe of %s:%s was accepted, a refusal was expected" % (params["host"], params["port"]))
        module.fail_json(msg=msg, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
