# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment(object):
    """The options of the modules that write a CA's state: its issuance ledger and the lock of its
    directory; the argument spec is plugins/module_utils/_argspec.py's ca_state_options()."""

    DOCUMENTATION = r"""
options:
  ledger_path:
    description:
      - The CA's issuance ledger (C(ledger.json) in the CA's directory), the CA's own record of
        every certificate it signed, for which host and tier, and of every revocation. See
        M(mtls.nginx.ledger).
    type: path
  lock_timeout:
    description:
      - How long to wait, in seconds, for the exclusive lock of the CA's directory (C(.lock) in it),
        which every operation that writes the CA's state holds for its whole read-modify-write, so
        that two runs at once never lose a revocation, reuse a CRL number or corrupt a rollover.
      - When it runs out, the task fails naming who holds the lock (host, process, what runs, since
        when), and changes nothing.
    type: float
    default: 300
  lock_holder:
    description: What this run is, for whoever waits for the lock (a playbook's name, say).
    type: str
    default: ""
"""
