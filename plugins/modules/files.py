#!/usr/bin/python
# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: files
short_description: Put a set of small public files on a host in one step
version_added: 0.1.0
description:
  - Writes each file of O(files) whose content differs, atomically (a temporary file in the same
    directory, its mode set before the content lands, then renamed over the old file), and
    applies its owner, group and mode.
  - The roles install their helper scripts, CA bundles, CRLs, known callers' maps and each tier's
    drop-in config (checked by O(files[].validate)) with it. One module run does
    what M(ansible.builtin.copy) does in two runs per file (a C(stat), then the attributes), so
    an idempotent run of a tier makes fewer round trips to the host.
  - Every entry is checked before any file is written (a path named once, an octal mode, a
    directory that exists), so a refusal changes nothing. The files are then written in order.
  - The content travels as a module argument. It is meant for public files such as
    certificates, CRLs and scripts. The roles install private keys and passphrases with
    M(ansible.builtin.copy) and C(no_log).
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - mtls.nginx.attributes
options:
  files:
    description: The files to write.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: Where the file goes. Its directory must exist.
        type: path
        required: true
      content:
        description: The file's whole content, as text.
        type: str
        required: true
      mode:
        description: Its mode, an octal string such as V('0644').
        type: raw
        default: "0644"
      owner:
        description: Its owner; unset keeps the owner of a file that is replaced, and the user that runs the module for a new one.
        type: str
      group:
        description: Its group; unset works as for O(files[].owner).
        type: str
      validate:
        description:
          - A command that checks the new content before it replaces the file, with C(%s) where
            the path of a temporary file holding it goes (as for M(ansible.builtin.template)); it
            runs without a shell, only when the content differs and not in check mode.
          - When it fails, the file keeps its old content, the files after it are not written,
            and the module fails naming the file, the command and what it printed.
        type: str
        version_added: 0.2.0
  directories:
    description:
      - Directories to make when they are missing, and whose owner, group and mode are applied,
        in order and before any file is written, so that a file of O(files) may go into one of
        them. A missing parent is made too, as C(mkdir -p) makes it (its mode from the umask).
    type: list
    elements: dict
    default: []
    version_added: 0.2.0
    suboptions:
      path:
        description: The directory.
        type: path
        required: true
      mode:
        description: Its mode, an octal string such as V('0750'); a new directory has it from the start.
        type: raw
        default: "0755"
      owner:
        description: Its owner; unset keeps the owner of an existing directory.
        type: str
      group:
        description: Its group; unset works as for O(directories[].owner).
        type: str
notes:
  - The diff shows each changed file's content before and after, as M(ansible.builtin.copy) does.
seealso:
  - module: ansible.builtin.copy
author:
  - mtls.nginx contributors (@mtls-nginx)
"""

EXAMPLES = r"""
- name: Install a CA bundle and its CRL
  mtls.nginx.files:
    files:
      - path: /etc/nginx/mtls/upstream/ca.pem
        content: "{{ lookup('ansible.builtin.file', 'pki/ca.pem') }}\n"
        owner: root
        group: root
      - path: /etc/nginx/mtls/upstream/ca.crl
        content: "{{ lookup('ansible.builtin.file', 'pki/ca.crl') }}\n"
  notify: Reload nginx

- name: Install a script, byte for byte
  mtls.nginx.files:
    files:
      - path: /usr/local/sbin/check-peer
        content: "{{ lookup('ansible.builtin.file', 'check-peer', rstrip=false) }}"
        mode: "0755"
"""

RETURN = r"""
paths:
  description:
    - The directories made or whose owner, group or mode changed, then the files whose content,
      owner, group or mode changed (or, in check mode, would change), as given in O(directories)
      and O(files).
  returned: always
  type: list
  elements: str
  sample: ["/etc/nginx/mtls/upstream/ca.crl"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mtls.nginx.plugins.module_utils._crypto import PKIError
from ansible_collections.mtls.nginx.plugins.module_utils._files import write_files


def main():
    module = AnsibleModule(
        argument_spec=dict(
            files=dict(type="list", elements="dict", required=True, options=dict(
                path=dict(type="path", required=True),
                content=dict(type="str", required=True),
                mode=dict(type="raw", default="0644"),
                owner=dict(type="str"),
                group=dict(type="str"),
                validate=dict(type="str"),
            )),
            directories=dict(type="list", elements="dict", default=[], options=dict(
                path=dict(type="path", required=True),
                mode=dict(type="raw", default="0755"),
                owner=dict(type="str"),
                group=dict(type="str"),
            )),
        ),
        supports_check_mode=True,
    )
    try:
        paths, diffs = write_files(module, module.params["files"], module.params["directories"])
    except (PKIError, OSError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=bool(paths), paths=paths, diff=diffs)


if __name__ == "__main__":
    main()
