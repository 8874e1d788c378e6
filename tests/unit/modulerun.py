"""Run a module's ``main()`` as Ansible does: arguments in, one JSON result out."""

import json

import pytest
from ansible.module_utils.testing import patch_module_args


def run_module(module, args, capsys, check_mode=False):
    """Run ``module.main()`` with ``args``; return (result, failed)."""
    if check_mode:
        args = dict(args, _ansible_check_mode=True)
    with patch_module_args(args):
        with pytest.raises(SystemExit) as done:
            module.main()
    result = json.loads(capsys.readouterr().out)
    return result, done.value.code != 0
