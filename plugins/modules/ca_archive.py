#!/usr/bin/python
# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: ca_archive
short_description: Back up, verify and restore the whole state of a CA of mtls.nginx as one encrypted file
version_added: 0.2.0
description:
  - Works on the CA's directory (C(mtls_pki_dir) of the pki role, on the controller or on a CA
    host) as a whole - the CA certificates, keys and CRLs of every generation (C(ca.*),
    C(intermediate.*), their C(-next) and C(-previous) files, C(archive/generation-N/)),
    C(generation), the issuance ledger C(ledger.json), C(revoked.txt), and any other file in it.
  - O(state=backup) reads the directory under its lock (so the copy is consistent with every
    signature and revocation), checks it (see below), and writes O(dest) atomically, mode
    C(0600). The archive is a clear-text header - the magic line C(MTLS-NGINX-CA-ARCHIVE 1), then
    one line of JSON with the format, when it was made, the root's subject and the SHA-256
    fingerprint of C(ca.pem) and of every CA certificate of the directory, the scrypt
    parameters and salt, the AES-256-GCM nonce, and the length and SHA-256 of the ciphertext -
    followed by the AES-256-GCM ciphertext of a tar of every file of the directory but C(.lock),
    made in memory. Keys are never in clear in the archive, nor anywhere on disk on the way.
  - O(state=backup) is never idempotent - each run writes a new archive (new salt and nonce)
    and reports a change; in check mode it reads (without taking the lock) and checks
    everything, reports a change, and writes nothing.
  - O(state=verify) reads, decrypts and checks O(src), writes nothing, and returns what it holds.
  - O(state=restore) restores O(src) as the CA directory O(path), which must be absent or an
    empty directory (or already hold exactly the archive's files, then nothing changes). The
    files are unpacked into a new directory beside O(path) (mode C(0700)), then renamed into
    place, so O(path) is either untouched or whole; keys get mode C(0600), directories C(0700),
    other files the mode they had.
  - O(state=verify) and O(state=restore) refuse, naming the problem and changing nothing - a file
    that is not an archive; a truncated archive; a damaged one (its ciphertext does not match
    the SHA-256 in its header); a wrong passphrase; an archive whose tar holds an absolute path,
    C(..), a link or a device; an archive of another CA than O(expect_ca_fingerprint) names; a
    destination holding another CA or other files; and content that fails the checks below.
  - The checks, on backup and after decryption - C(ca.pem) is a CA certificate; each key beside
    a CA certificate (C(X.key) beside C(X.pem)) holds its public key (an encrypted key is noted,
    not opened); each chain (C(*-chain.pem)) starts with its CA and verifies to a root; each CRL
    is signed by the CA certificate that carries its issuer's name; C(ledger.json) loads.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - mtls.nginx.attributes.no_diff
  - mtls.nginx.cryptography
options:
  state:
    description: Write an archive of O(path) (V(backup)), check O(src) (V(verify)), or restore O(src) as O(path) (V(restore)).
    type: str
    required: true
    choices: [backup, verify, restore]
  path:
    description:
      - The CA's directory (C(mtls_pki_dir) of the pki role). With O(state=backup) the directory
        archived; it must hold C(ca.pem).
      - With O(state=restore) the directory restored; it must be absent (its parent must exist)
        or empty, or hold exactly what the archive holds.
    type: path
  dest:
    description:
      - With O(state=backup), the archive file to write (replaced atomically, mode C(0600)). Its
        directory must exist, and must not be the CA's directory or in it.
    type: path
  src:
    description: With O(state=verify) and O(state=restore), the archive to read.
    type: path
  passphrase:
    description:
      - The passphrase the archive's key is derived from (scrypt). With O(state=backup), at least 12 characters.
      - Keep it apart from the archive (in a vault); without it the archive cannot be read, and
        nobody can tell it from the archive.
    type: str
    required: true
  expect_ca_fingerprint:
    description:
      - With O(state=verify) and O(state=restore), SHA-256 fingerprints (hexadecimal, with or
        without colons) of which the archive must hold at least one among its CA certificates;
        an archive of another CA is refused. Empty to accept any CA.
    type: list
    elements: str
    default: []
  lock_timeout:
    description:
      - With O(state=backup), how long to wait, in seconds, for the exclusive lock of the CA's
        directory; when it runs out, the task fails naming who holds it, and writes nothing.
    type: float
    default: 300
  lock_holder:
    description: What this run is, for whoever waits for the lock.
    type: str
    default: ""
notes:
  - The passphrase is never returned or logged, and neither is any file's content; the returned
    values name files and describe certificates only.
  - Run it where the CA is (the controller, or the CA host), as the user who owns the CA's files.
seealso:
  - module: mtls.nginx.ca
  - module: mtls.nginx.ca_rollover
  - module: mtls.nginx.ledger
author:
  - mtls.nginx contributors (@mtls-nginx)
"""

EXAMPLES = r"""
- name: Back up the CA, its keys, CRLs and ledger, encrypted
  mtls.nginx.ca_archive:
    state: backup
    path: ~/.mtls-nginx/pki
    dest: /srv/backup/mtls-ca-{{ now(utc=true, fmt='%Y%m%dT%H%M%SZ') }}.archive
    passphrase: "{{ vault_ca_archive_passphrase }}"
    lock_holder: nightly CA backup
  delegate_to: localhost
  run_once: true

- name: Check that a backup is whole, readable and of our CA
  mtls.nginx.ca_archive:
    state: verify
    src: /srv/backup/mtls-ca-20260105T021500Z.archive
    passphrase: "{{ vault_ca_archive_passphrase }}"
    expect_ca_fingerprint:
      - "3E:1B:7C:...:9A"
  delegate_to: localhost
  register: backup

- name: Restore the CA onto a new controller
  mtls.nginx.ca_archive:
    state: restore
    src: /srv/backup/mtls-ca-20260105T021500Z.archive
    path: ~/.mtls-nginx/pki
    passphrase: "{{ vault_ca_archive_passphrase }}"
    expect_ca_fingerprint: "{{ [mtls_ca_fingerprint] }}"
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
lock_waits:
  description:
    - Each wait for the lock of the CA's directory, which another run held (also shown as a warning) -
      the directory, who held the lock when this run found it taken, and the seconds waited.
  type: list
  elements: dict
  returned: always
  sample: [{"path": "/var/lib/mtls-nginx/pki", "holder": "mtls.nginx.revoke (for web-1) on ca-1 (pid 4242) since 2026-12-06T03:00:00Z", "seconds": 2.4}]
ca:
  description: The root CA of the directory (C(ca.pem)).
  returned: success
  type: dict
  contains:
    subject:
      description: Its subject.
      type: str
    fingerprint_sha256:
      description: The SHA-256 fingerprint of its certificate, hexadecimal with colons.
      type: str
  sample:
    subject: CN=Example services CA
    fingerprint_sha256: "3E:1B:...:9A"
certificates:
  description: Every CA certificate of the directory (the C(.pem) files, chains left out), of every generation.
  returned: success
  type: list
  elements: dict
  contains:
    file:
      description: Its file, relative to the CA's directory.
      type: str
    subject:
      description: Its subject.
      type: str
    fingerprint_sha256:
      description: Its SHA-256 fingerprint, hexadecimal with colons.
      type: str
    not_after:
      description: When it expires (ISO 8601, UTC).
      type: str
  sample:
    - {"file": "ca.pem", "subject": "CN=Example services CA", "fingerprint_sha256": "3E:1B:...:9A",
       "not_after": "2036-01-03T09:12:44+00:00"}
files:
  description: The files of the directory (in the archive), relative to it; names only.
  returned: success
  type: list
  elements: str
  sample: [ca.crl, ca.key, ca.pem, intermediate-chain.pem, intermediate.crl, intermediate.key, intermediate.pem, ledger.json]
ledger:
  description: How many certificates the issuance ledger holds, in all (C(total)) and by status; zeros without a ledger.
  returned: success
  type: dict
  sample: {"total": 12, "valid": 8, "superseded": 3, "revoked": 1}
checks:
  description: The consistency checks that passed, one line each (an encrypted key is noted as not compared).
  returned: success
  type: list
  elements: str
  sample: ["ca.key: the key of ca.pem", "intermediate-chain.pem: verifies to CN=Example root CA",
           "ca.crl: signed by CN=Example root CA (ca.pem)", "ledger.json: loads, 12 certificates"]
dest:
  description: With O(state=backup), the archive written (in check mode, that would be written).
  returned: when O(state=backup)
  type: str
size:
  description: With O(state=backup), the archive's size in bytes.
  returned: when O(state=backup)
  type: int
created:
  description: With O(state=verify) and O(state=restore), when the archive was made (UTC), as its header says.
  returned: when O(state=verify) or O(state=restore)
  type: str
  sample: "2026-01-05T02:15:00Z"
path:
  description: With O(state=restore), the CA directory restored.
  returned: when O(state=restore)
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mtls.nginx.plugins.module_utils._crypto import PKIError, require_cryptography
from ansible_collections.mtls.nginx.plugins.module_utils._ledger import wait_messages, waits


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", required=True, choices=["backup", "verify", "restore"]),
            path=dict(type="path"),
            dest=dict(type="path"),
            src=dict(type="path"),
            passphrase=dict(type="str", required=True, no_log=True),
            expect_ca_fingerprint=dict(type="list", elements="str", default=[]),
            lock_timeout=dict(type="float", default=300.0),
            lock_holder=dict(type="str", default=""),
        ),
        required_if=[("state", "backup", ("path", "dest")), ("state", "verify", ("src",)),
                     ("state", "restore", ("src", "path"))],
        supports_check_mode=True,
    )
    require_cryptography(module)
    from ansible_collections.mtls.nginx.plugins.module_utils import _archive

    params = module.params
    try:
        if params["state"] == "backup":
            result = _archive.backup(params["path"], params["dest"], params["passphrase"], module.check_mode,
                                     params["lock_timeout"], params["lock_holder"])
        elif params["state"] == "verify":
            result = _archive.verify(params["src"], params["passphrase"], params["expect_ca_fingerprint"])
        else:
            result = _archive.restore(params["src"], params["passphrase"], params["path"],
                                      params["expect_ca_fingerprint"], module.check_mode)
    except (PKIError, OSError) as exc:
        module.fail_json(msg=str(exc))
    for message in wait_messages():
        module.warn(message)
    result["lock_waits"] = waits()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
