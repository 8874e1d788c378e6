"""A user's first mistakes, made the way a user makes them: the collection installed from its
built tarball into a fresh collections path, a playbook of theirs that imports
mtls.nginx.upstream, and one mistake at a time. Each is named (the variable, or the host and its
platform) within the first 25 lines of output, and nothing changes."""

import json
import os
import re
import subprocess

import pytest

from mtls_testing import _ansible_env, inventory_dir

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
UPSTREAM = "mtls-keyhome-upstream"
OS_RELEASE_UBUNTU = """PRETTY_NAME="Ubuntu 24.04.1 LTS"
NAME="Ubuntu"
VERSION_ID="24.04"
VERSION="24.04.1 LTS (Noble Numbat)"
VERSION_CODENAME=noble
ID=ubuntu
ID_LIKE=debian
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The collection as a user gets it: built into a tarball, installed into a new path."""
    work = tmp_path_factory.mktemp("user")
    build = subprocess.run(["ansible-galaxy", "collection", "build", "--output-path", str(work), ROOT],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    assert build.returncode == 0, build.stdout
    tarball = re.search(r"(\S+\.tar\.gz)", build.stdout).group(1)
    collections = work / "collections"
    # Installed where the user's runs look (the checkout's mtls.nginx would count as installed otherwise).
    install = subprocess.run(["ansible-galaxy", "collection", "install", "--offline", "-p", str(collections), tarball],
                             env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections)),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    assert install.returncode == 0, install.stdout
    assert (collections / "ansible_collections" / "mtls" / "nginx" / "roles" / "upstream").is_dir()
    playbook = work / "mine.yml"
    playbook.write_text("""---
- name: My hosts, with the collection's upstream role
  hosts: %s
  roles:
    - mtls.nginx.upstream
""" % UPSTREAM)
    return collections, playbook


def _run(installed, *extra):
    collections, playbook = installed
    # Only the installed tarball is mtls.nginx here; community.docker (for the containers) comes
    # from the ansible package, as on any controller that has it.
    env = dict(_ansible_env(), ANSIBLE_COLLECTIONS_PATH=str(collections))
    done = subprocess.run(["ansible-playbook", "-i", inventory_dir(), str(playbook)] + list(extra), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    recap = {}
    for line in done.stdout.split("PLAY RECAP")[-1].splitlines():
        match = re.match(r"^(\S+)\s*:\s*(.*)$", line.strip())
        if match and "ok=" in match.group(2):
            recap[match.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return done.returncode, done.stdout, recap


def _named_early(output, *words):
    """Whether one of the first 25 lines names every one of ``words``."""
    return any(all(word in line for word in words) for line in output.splitlines()[:25])


@pytest.mark.parametrize("mistake,words", [
    ({"mtls_upstream_backend": "http://127.0.0.1:9000"},
     ["mtls_upstream_backend: not a variable of the upstream tier", "did you mean mtls_upstream_backend_url?"]),
    ({"mtls_upstream_keepalive_requests": "lots"},
     ["mtls_upstream_keepalive_requests: expected a whole number, got a string, 'lots'"]),
    ({"mtls_upstream_listen": {"port": 9443}},
     ["mtls_upstream_listen: expected a list of str, got a dict"]),
    ({"mtls_upstream_locations": "/admin/"},
     ["mtls_upstream_locations[0]: expected a dict (a mapping), got a string, '/admin/'"]),
], ids=["misspelt", "wrong-type", "dict-for-a-list", "string-for-a-list-of-dicts"])
def test_a_mistake_is_named_in_one_line_early_and_nothing_changes(installed, mistake, words):
    rc, output, recap = _run(installed, "-e", json.dumps(mistake))
    assert rc != 0, output
    assert _named_early(output, *words), output
    assert recap[UPSTREAM]["changed"] == 0, output
    # Not Ansible's own argument check, which prints the whole argument spec.
    assert "argument_spec_data" not in output and max(len(line) for line in output.splitlines()) < 2000


def test_a_string_for_a_list_is_one_element_never_characters(installed):
    """-e mtls_upstream_listen=8443 (what the command line gives) is the list [8443]: the check passes it (in check mode)."""
    rc, output, _recap = _run(installed, "--check", "-e", "mtls_upstream_listen=8443")
    assert "expected a list" not in output
    assert rc == 0, output


def test_an_unsupported_platform_is_refused_first_naming_host_distribution_and_version(installed, upstream):
    upstream.run_expect([0], "cp /etc/os-release /root/os-release.keyhome && rm /etc/os-release && "
                             "printf %s '" + OS_RELEASE_UBUNTU.replace("'", "") + "' > /etc/os-release")
    try:
        rc, output, recap = _run(installed)
    finally:
        upstream.run_expect([0], "rm -f /etc/os-release && mv /root/os-release.keyhome /etc/os-release")
    assert rc != 0, output
    assert _named_early(output, UPSTREAM + ": Ubuntu 24.04", "is not a platform of mtls.nginx",
                        "Debian 12 and Debian 13"), output
    assert recap[UPSTREAM]["changed"] == 0, output
