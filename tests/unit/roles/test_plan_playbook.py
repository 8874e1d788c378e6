"""The plan as an operator meets it, run for real by ansible-playbook on the controller: the
mtls.nginx.plan playbook (the first step of every playbook of the collection) and a tier role used
on its own, which makes its record with the same code. Nothing is deployed: the plan and the
record step read the inventory and change nothing."""

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")

INVENTORY = """
all:
  vars:
    ansible_connection: local
    ansible_python_interpreter: "{python}"
    mtls_upstream_server_name: svc.internal
    mtls_proxy_upstream_name: svc.internal
    mtls_pki_dir: "{pki}"
  children:
    mtls_upstreams:
      hosts:
        up1: {up1}
        up2: {{}}
    mtls_proxies:
      hosts:
        px1: {px1}
"""

# A proxy tier of the operator's own playbook: the role on its own, up to its record.
ROLE_RECORD = """
- hosts: mtls_proxies
  gather_facts: false
  tasks:
    - ansible.builtin.import_role:
        name: mtls.nginx.nginx_common
        tasks_from: record
      vars:
        mtls_nginx_record_kind: proxy
        mtls_nginx_record_given: {}
    - ansible.builtin.debug:
        msg: "record {{ mtls_nginx_tier.label }}"
"""


def run(tmp_path, playbook, up1="{}", px1="{}", *extra):
    collections = tmp_path / "collections" / "ansible_collections" / "mtls"
    collections.mkdir(parents=True, exist_ok=True)
    if not (collections / "nginx").exists():
        os.symlink(ROOT, collections / "nginx")
    (tmp_path / "inventory.yml").write_text(INVENTORY.format(up1=up1, px1=px1, python=sys.executable,
                                                             pki=tmp_path / "pki"))
    if not playbook.startswith("mtls.nginx."):
        (tmp_path / "playbook.yml").write_text(playbook)
        playbook = str(tmp_path / "playbook.yml")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(tmp_path / "collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_STDOUT_CALLBACK="default", ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"))
    env.pop("ANSIBLE_LOG_PATH", None)
    done = subprocess.run([ANSIBLE_PLAYBOOK, "-i", str(tmp_path / "inventory.yml"), playbook] + list(extra),
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False, cwd=tmp_path)
    return done.returncode, done.stdout


pytestmark = pytest.mark.skipif(not shutil.which(ANSIBLE_PLAYBOOK), reason="ansible-playbook is not beside this Python")


def test_the_plan_playbook_shows_every_tier_and_changes_nothing(tmp_path):
    rc, out = run(tmp_path, "mtls.nginx.plan")
    assert rc == 0, out
    for line in ("up1   upstream  mtls-upstream  8443", "px1   proxy     mtls-proxy     127.0.0.1:8080"):
        assert line in out, out
    assert "changed=0" in out and not (tmp_path / "pki").exists()


def test_an_upstream_host_that_closes_idle_connections_first_is_refused_by_name(tmp_path):
    rc, out = run(tmp_path, "mtls.nginx.plan", "{mtls_upstream_keepalive_timeout: 30s}")
    assert rc != 0
    assert ("px1: mtls_proxy_keepalive_timeout: 60s is not shorter than the keepalive_timeout (30s) of the upstream "
            "tier mtls-upstream on up1") in out, out
    assert "up2" not in out.split("Make the proxy's shorter")[0].split("px1: mtls_proxy_keepalive_timeout")[1]


def test_every_problem_of_the_inventory_is_named_in_one_run(tmp_path):
    rc, out = run(tmp_path, "mtls.nginx.plan", "{mtls_upstream_backend_url: 'http://x:1/;', mtls_upstream_backend: y}",
                  "{mtls_proxy_common_name: 'spiffe://mesh.internal/billing', mtls_proxy_listen: '8080;'}")
    assert rc != 0
    for message in ("up1: mtls_upstream_backend_url: ",
                    "mtls_upstream_backend (set for up1): not a variable of mtls.nginx.upstream "
                    "(did you mean mtls_upstream_backend_url?)",
                    "px1: mtls_proxy_common_name: 'spiffe://mesh.internal/billing' is a workload identity",
                    "px1: mtls_proxy_listen[0]: "):
        assert message in out, out
    assert "The inventory has 4 problem(s); nothing was changed" in out, out


def test_a_role_on_its_own_checks_its_proxy_against_the_upstream_hosts_of_the_inventory(tmp_path):
    rc, out = run(tmp_path, ROLE_RECORD, "{mtls_upstream_keepalive_timeout: 30s}")
    assert rc != 0
    assert ("mtls_proxy_keepalive_timeout: 60s is not shorter than the keepalive_timeout (30s) of the upstream "
            "tier mtls-upstream on up1") in out, out
    rc, out = run(tmp_path, ROLE_RECORD, "{mtls_upstream_keepalive_timeout: 90s}", "{mtls_proxy_upstream_servers: up1:8443}")
    assert rc == 0, out
    assert "record proxy tier mtls-proxy on px1" in out


def test_a_role_on_its_own_refuses_a_hand_set_workload_identity_and_a_misspelt_variable(tmp_path):
    rc, out = run(tmp_path, ROLE_RECORD, "{}", "{mtls_proxy_common_name: 'spiffe://mesh.internal/billing', "
                                               "mtls_proxy_conect_timeout: 5s}")
    assert rc != 0
    assert "mtls_proxy_common_name: 'spiffe://mesh.internal/billing' is a workload identity" in out, out
    assert "mtls_proxy_conect_timeout: not a variable of the proxy tier (did you mean mtls_proxy_connect_timeout?)" in out, out
