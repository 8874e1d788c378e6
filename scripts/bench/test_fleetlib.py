"""Unit tests of scripts/bench/fleetlib.py: the scaled fleet inventory, the per-host PLAY RECAP,
the table. Run: (. scripts/env.sh && python -m pytest scripts/bench)."""

import os

import pytest
import yaml

import fleetlib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BASE = os.path.join(ROOT, "molecule", "fleet", "inventory", "hosts.yml")


@pytest.fixture(name="base")
def fixture_base():
    with open(BASE, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _groups(inventory):
    return {name: list(group["hosts"]) for name, group in inventory["all"]["children"].items()}


def test_scale_repeats_the_fleet_with_numbered_names(base):
    base_shape = fleetlib.shape(base)
    inventory = fleetlib.scale(base, 2 * base_shape["hosts"], "/tmp/pki")
    shape = fleetlib.shape(inventory)
    assert shape == {"hosts": 2 * base_shape["hosts"], "services": 2 * base_shape["services"],
                     "edges": 2 * base_shape["edges"]}
    hosts = fleetlib.base_hosts(inventory["all"]["children"])
    assert len(set(hosts)) == len(hosts)
    assert all(host.startswith("mtls-fb-1-") or host.startswith("mtls-fb-2-") for host in hosts)
    services = {service["name"]: service for service in inventory["all"]["vars"]["mtls_mesh"]["services"]}
    groups = _groups(inventory)
    for name, service in services.items():
        copy_number = name.rsplit("-", 1)[1]
        # Each copy calls only within itself, and runs on its own copy's hosts.
        assert all(call["service"].endswith("-" + copy_number) for call in service.get("calls") or [])
        assert all(host.startswith("mtls-fb-%s-" % copy_number) for host in groups[service["group"]])
        if "local_group" in service:
            assert service["local_group"].endswith("-" + copy_number) and len(service["local_group"]) <= 32
    variables = inventory["all"]["vars"]
    assert variables["mtls_test_network"] == "mtls-fb" and variables["mtls_pki_dir"] == "/tmp/pki"
    # The rest of the base's variables stay (connection, image).
    assert variables["ansible_connection"] == base["all"]["vars"]["ansible_connection"]
    assert variables["mtls_mesh"]["trust_domain"] == base["all"]["vars"]["mtls_mesh"]["trust_domain"]
    # The base is left as it was.
    assert fleetlib.shape(base) == base_shape


def test_scale_keeps_each_hosts_load(base):
    """Each host of a copy runs the same services as its counterpart in the base fleet."""
    inventory = fleetlib.scale(base, 40, "/tmp/pki")
    base_groups = _groups(base)
    groups = _groups(inventory)

    def services_of(groups_, host):
        return sorted(group.rsplit("_", 1)[0] if groups_ is groups else group
                      for group, members in groups_.items() if host in members)

    for host in fleetlib.base_hosts(base["all"]["children"]):
        for copy_number in (1, 2, 3, 4):
            assert services_of(groups, "mtls-fb-%d-%s" % (copy_number, host)) == services_of(base_groups, host)


def test_scale_refuses_sizes_that_are_not_copies(base):
    with pytest.raises(ValueError, match="multiples of the base fleet's 10 hosts, not 15"):
        fleetlib.scale(base, 15, "/tmp/pki")
    with pytest.raises(ValueError):
        fleetlib.scale(base, 0, "/tmp/pki")


def test_ansible_cfg():
    text = fleetlib.ansible_cfg(40)
    assert "forks = 40" in text and "pipelining = True" in text and "interpreter_python = auto_silent" in text
    assert "forks = 50" in fleetlib.ansible_cfg(80)


RECAP = """PLAY RECAP *********************************************************************
mtls-fb-1-f-audit1         : ok=80   changed=0    unreachable=0    failed=0    skipped=20   rescued=0    ignored=0
mtls-fb-1-f-web1           : ok=100  changed=2    unreachable=0    failed=1    skipped=40   rescued=0    ignored=0
localhost                  : ok=5    changed=0    unreachable=0    failed=0    skipped=0    rescued=0    ignored=0

Playbook run took 0 days, 0 hours, 1 minutes, 5 seconds
"""


def test_recap_per_host_and_host_tasks():
    hosts = fleetlib.parse_recap_hosts(RECAP)
    assert hosts["mtls-fb-1-f-web1"] == {"ok": 100, "changed": 2, "unreachable": 0, "failed": 1, "skipped": 40,
                                         "rescued": 0, "ignored": 0}
    assert fleetlib.host_tasks(hosts) == pytest.approx((100 + 143 + 5) / 3.0)
    # Only the fleet's hosts count (not a localhost the CA steps may add).
    assert fleetlib.host_tasks(hosts, {"mtls-fb-1-f-audit1", "mtls-fb-1-f-web1"}) == pytest.approx((100 + 143) / 2.0)
    assert fleetlib.host_tasks({}) is None


def test_summarize_and_render():
    size = {"hosts": 2, "services": 2, "edges": 1, "forks": 2, "host_names": ["mtls-fb-1-f-audit1", "mtls-fb-1-f-web1"]}
    steps = [{"label": "containers (create and prepare)", "measured": True, "wall_s": 20.0},
             {"label": "first run", "measured": True, "wall_s": 100.0, "playbook_s": 98, "changed": 50, "log": "first-run.log"},
             {"label": "idempotent rerun", "measured": True, "wall_s": 60.0, "playbook_s": 58, "changed": 0,
              "log": "idempotent-rerun.log"},
             {"label": "ping", "measured": True, "wall_s": 4.0, "playbook_s": None, "changed": None, "log": "ping.log"}]
    row = fleetlib.summarize_size(size, steps, {"first-run.log": RECAP, "idempotent-rerun.log": RECAP})
    assert row["first_run_s"] == 100.0 and row["rerun_s"] == 60.0 and row["ping_s"] == 4.0
    assert row["rerun_per_ping"] == pytest.approx(15.0)
    assert row["rerun_s_per_host"] == pytest.approx(30.0)
    assert row["rerun_host_tasks_per_host"] == pytest.approx(121.5)
    assert row["rerun_changed"] == 0 and row["verify_s"] is None
    assert "host_names" not in row
    report = {"started_utc": "2026-01-01 00:00:00 UTC", "argv": ["--hosts", "2"], "machine": {"CPU": "AMD EPYC × 2"},
              "sizes": [row, {"hosts": 4, "status": "failed at: first run (see hosts-4/)"}]}
    text = fleetlib.render(report)
    assert "| 2 | 2 | 1 | 2 | 100.0 | 60.0 | 0 | 121.5 / 121.5 | 4.0 | 15.0× | 30.00 | ok |" in text
    assert "| 4 | ? | ? | ? | n/a | n/a | n/a | n/a / n/a | n/a | n/a | n/a | failed at: first run (see hosts-4/) |" in text
    assert "`scripts/bench/fleet --hosts 2` on AMD EPYC × 2" in text
