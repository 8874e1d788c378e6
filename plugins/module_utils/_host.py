# Copyright: mtls.nginx contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a host already has of what its tiers need, read without changing anything: which
packages dpkg lists as installed, and whether systemd runs a service and starts it at boot.
mtls.nginx.host_state returns it; nginx_common then runs ansible.builtin.apt or
ansible.builtin.service only for what is missing. Anything this cannot tell (no dpkg-query, no
systemd) is reported as missing or unknown, so that the real module runs and decides."""


def parse_dpkg_query(output):
    """{package: version} of the packages dpkg-query lists as installed ("ii"), from lines of
    `${Package}\\t${db:Status-Abbrev}\\t${Version}`. A package held, half-installed or only
    configured-files is not installed."""
    installed = {}
    for line in output.splitlines():
        fields = line.split("\t")
        if len(fields) != 3:
            continue
        name, status, version = fields
        if status.strip() == "ii":
            installed[name] = version
    return installed


def installed_packages(module, names):
    """{name: version or None} for each of `names`: its installed version as dpkg knows it, None
    when it is not installed or cannot be told (dpkg-query missing, a name with a version
    pin such as nginx=1.22*: then apt decides)."""
    result = dict.fromkeys(names)
    if not names:
        return result
    binary = module.get_bin_path("dpkg-query")
    if not binary:
        return result
    # Exit status 1 when one of the names is unknown to dpkg: the others are still listed.
    rc, out, dummy = module.run_command(
        [binary, "-W", "-f=${Package}\\t${db:Status-Abbrev}\\t${Version}\\n"] + list(names),
        environ_update={"LC_ALL": "C"})
    if rc not in (0, 1):
        return result
    for name, version in parse_dpkg_query(out).items():
        if name in result:
            result[name] = version
    return result


def parse_systemctl_show(output):
    """{property: value} of `systemctl show --property=...` output."""
    values = {}
    for line in output.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


def service_state(module, name):
    """{active, enabled, active_state, unit_file_state} of systemd's unit `name`: active is True
    only for ActiveState active, enabled only for UnitFileState enabled; both None when systemd
    does not answer (no systemctl, or no systemd running), so the caller runs the real module."""
    unknown = {"active": None, "enabled": None, "active_state": "", "unit_file_state": ""}
    binary = module.get_bin_path("systemctl")
    if not binary:
        return unknown
    rc, out, dummy = module.run_command(
        [binary, "show", "--property=ActiveState,UnitFileState,LoadState", "--", name],
        environ_update={"LC_ALL": "C"})
    if rc != 0:
        return unknown
    values = parse_systemctl_show(out)
    if "ActiveState" not in values:
        return unknown
    return {
        "active": values["ActiveState"] == "active",
        "enabled": values.get("UnitFileState", "") == "enabled",
        "active_state": values["ActiveState"],
        "unit_file_state": values.get("UnitFileState", ""),
    }


def distribution_facts(module):
    """The distribution facts as ansible.builtin.setup reads them (its own collector):
    distribution, distribution_version, distribution_major_version, distribution_release,
    os_family, ..."""
    from ansible.module_utils.facts.system.distribution import DistributionFactCollector

    return DistributionFactCollector().collect(module=module)
