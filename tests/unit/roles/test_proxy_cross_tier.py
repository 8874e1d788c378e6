"""The proxy role's cross-tier checks, run for real by ansible-playbook (the role's preflight
only, on the controller: it reads the inventory and changes nothing): a proxy keep-alive timeout
that is not shorter than an upstream host's is refused, naming the host."""

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
    mtls_upstream_server_name: svc.internal
    mtls_proxy_upstream_name: svc.internal
  children:
    mtls_upstreams:
      hosts:
        up1: {up1}
        up2: {{}}
    mtls_proxies:
      hosts:
        px1:
          ansible_connection: local
          ansible_python_interpreter: "{python}"
"""

PLAYBOOK = """
- hosts: mtls_proxies
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: mtls.nginx.proxy
        tasks_from: preflight
"""


def run_preflight(tmp_path, up1_vars, *extra):
    collections = tmp_path / "collections" / "ansible_collections" / "mtls"
    collections.mkdir(parents=True)
    os.symlink(ROOT, collections / "nginx")
    (tmp_path / "inventory.yml").write_text(INVENTORY.format(up1=up1_vars, python=sys.executable))
    (tmp_path / "preflight.yml").write_text(PLAYBOOK)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(tmp_path / "collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_STDOUT_CALLBACK="default", ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"))
    env.pop("ANSIBLE_LOG_PATH", None)
    done = subprocess.run([ANSIBLE_PLAYBOOK, "-i", str(tmp_path / "inventory.yml"), "--check",
                           str(tmp_path / "preflight.yml")] + list(extra),
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False, cwd=tmp_path)
    return done.returncode, done.stdout


pytestmark = pytest.mark.skipif(not shutil.which(ANSIBLE_PLAYBOOK), reason="ansible-playbook is not beside this Python")


def test_an_upstream_host_that_closes_idle_connections_first_is_refused_by_name(tmp_path):
    rc, out = run_preflight(tmp_path, "{mtls_upstream_keepalive_timeout: 30s}")
    assert rc != 0, out
    assert ("mtls_proxy_keepalive_timeout: 60s is not shorter than the mtls_upstream_keepalive_timeout (30s) "
            "of upstream host up1") in out, out
    # up2 keeps the upstream role's default, 75s, which 60s is shorter than.
    assert "of upstream host up2" not in out


def test_a_proxy_timeout_shorter_than_every_upstream_host_passes(tmp_path):
    rc, out = run_preflight(tmp_path, "{mtls_upstream_keepalive_timeout: 2m}", "-e", "mtls_proxy_keepalive_timeout=500ms")
    assert rc == 0, out


def test_a_malformed_upstream_timeout_is_left_to_that_tier_s_own_preflight(tmp_path):
    # Not compared (nginx_seconds would fail on it without naming the variable); the upstream
    # role's value checks name it on that host.
    rc, out = run_preflight(tmp_path, "{mtls_upstream_keepalive_timeout: soon}")
    assert rc == 0, out
    assert "not shorter than" not in out


def test_a_hand_set_workload_identity_is_refused(tmp_path):
    # CN=spiffe://... is what the upstream tiers of a service mesh admit and forward as a
    # service's identity: only the declaration (mtls_mesh) may issue it.
    rc, out = run_preflight(tmp_path, "{}", "-e", "mtls_proxy_common_name=spiffe://mesh.internal/billing")
    assert rc != 0, out
    assert ("mtls_proxy_common_name: spiffe://mesh.internal/billing is a workload identity, which only the "
            "service mesh declaration (mtls_mesh, deployed by mtls.nginx.site) issues") in out, out
