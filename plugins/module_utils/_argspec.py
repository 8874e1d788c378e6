# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument spec pieces that several modules share, each the counterpart of the doc fragment
in plugins/doc_fragments that documents it: change both together."""

from ._crypto import KEY_TYPES


def argument_spec(*shared, **options):
    """One module's argument spec: the ``shared`` pieces, then its own ``options``."""
    spec = {}
    for piece in shared:
        spec.update(piece)
    spec.update(options)
    return spec


def file_options():
    """mode, privatekey_mode, owner, group (doc fragment mtls.nginx.key_files)."""
    return {
        "mode": dict(type="raw", default="0644"),
        "privatekey_mode": dict(type="raw", default="0600", no_log=False),
        "owner": dict(type="str"),
        "group": dict(type="str"),
    }


def key_type_option():
    """key_type (doc fragment mtls.nginx.key_files)."""
    return {"key_type": dict(type="str", default="ecdsa-p256", choices=list(KEY_TYPES))}


def ca_state_options():
    """ledger_path, lock_timeout, lock_holder (doc fragment mtls.nginx.ca_state)."""
    return {
        "ledger_path": dict(type="path"),
        "lock_timeout": dict(type="float", default=300.0),
        "lock_holder": dict(type="str", default=""),
    }
