"""mtls.nginx.host_state as Ansible runs it, on this machine: dpkg's answer for installed and
missing packages, systemd's (a stand-in systemctl on PATH) for a service, and the distribution
as ansible.builtin.setup reads it. It changes nothing, in check mode or not."""

import os
import subprocess

import pytest

from modulerun import run_module
from ansible_collections.mtls.nginx.plugins.module_utils import _host
from ansible_collections.mtls.nginx.plugins.modules import host_state

MISSING = "mtls-nginx-no-such-package"


def run(args, capsys, check_mode=False):
    return run_module(host_state, args, capsys, check_mode)


def test_only_a_package_dpkg_lists_as_installed_counts():
    listed = _host.parse_dpkg_query(
        "nginx\tii \t1.22.1-9\n"
        "openssl\trc \t3.0.15-1\n"          # removed, its config files kept
        "python3-cryptography\tiU \t38.0.4\n"  # unpacked, not configured
        "garbage line\n")
    assert listed == {"nginx": "1.22.1-9"}


@pytest.mark.skipif(not os.path.exists("/usr/bin/dpkg-query"), reason="needs dpkg (Debian)")
@pytest.mark.parametrize("check_mode", [False, True])
def test_an_installed_package_has_its_version_and_a_missing_one_is_listed(capsys, check_mode):
    version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "dpkg"], check=True,
                             capture_output=True, text=True).stdout
    result, failed = run({"packages": ["dpkg", MISSING]}, capsys, check_mode)
    assert not failed and result["changed"] is False
    assert result["packages"] == {"dpkg": version, MISSING: None}
    assert result["missing_packages"] == [MISSING]
    assert "ansible_facts" not in result


def fake_systemctl(tmp_path, monkeypatch, output, status=0):
    script = tmp_path / "systemctl"
    script.write_text("#!/bin/sh\nprintf '%s'\nexit %d\n" % (output, status))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", "%s:%s" % (tmp_path, os.environ["PATH"]))


@pytest.mark.parametrize("output, status, expected", [
    ("ActiveState=active\\nUnitFileState=enabled\\nLoadState=loaded\\n", 0, (True, True)),
    ("ActiveState=active\\nUnitFileState=disabled\\nLoadState=loaded\\n", 0, (True, False)),
    ("ActiveState=failed\\nUnitFileState=enabled\\nLoadState=loaded\\n", 0, (False, True)),
    # No such unit: systemd still answers, inactive and without a unit file.
    ("ActiveState=inactive\\nUnitFileState=\\nLoadState=not-found\\n", 0, (False, False)),
    # systemd not running (a container without it): unknown, the real module decides.
    ("", 1, (None, None)),
])
def test_a_service_is_running_and_enabled_only_as_systemd_says(tmp_path, monkeypatch, capsys, output, status, expected):
    fake_systemctl(tmp_path, monkeypatch, output, status)
    result, failed = run({"services": ["nginx"]}, capsys)
    assert not failed
    state = result["services"]["nginx"]
    assert (state["active"], state["enabled"]) == expected


def test_the_distribution_is_what_os_release_names(capsys):
    values = {}
    with open("/etc/os-release") as handle:
        for line in handle:
            key, sep, value = line.strip().partition("=")
            if sep:
                values[key] = value.strip('"')
    result, failed = run({"distribution": True}, capsys)
    assert not failed
    facts = result["ansible_facts"]
    if values.get("ID") == "debian":
        assert facts["distribution"] == "Debian" and facts["os_family"] == "Debian"
    if values.get("VERSION_ID"):
        assert facts["distribution_major_version"] == values["VERSION_ID"].split(".")[0]
