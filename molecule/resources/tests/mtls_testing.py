"""Shared by every scenario's tests: hosts by tier, and helpers that send real requests from inside them."""

import json
import os
import re
import shlex
import subprocess
import time

import pytest
import testinfra

# Where the roles keep each tier's certificates and keys on the hosts (mtls_*_config_name).
PROXY_PKI = "/etc/nginx/mtls/mtls-proxy"
UPSTREAM_PKI = "/etc/nginx/mtls/mtls-upstream"
# The scenario's directory on the controller, and in it the PKI (CAs, CRLs) of its converge.
EPHEMERAL = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "")
PKI = os.path.join(EPHEMERAL, "pki")


def _hosts(request, group):
    inventory = request.config.option.ansible_inventory
    return testinfra.get_hosts(["ansible://" + group], ansible_inventory=inventory)


@pytest.fixture(scope="session")
def upstreams(request):
    return _hosts(request, "mtls_upstreams")


@pytest.fixture(scope="session")
def proxies(request):
    return _hosts(request, "mtls_proxies")


@pytest.fixture(scope="session")
def upstream(upstreams):
    return upstreams[0]


@pytest.fixture(scope="session")
def proxy(proxies):
    return proxies[0]


def access_log(host, config_name="mtls-upstream"):
    """The tier's access log on ``host`` with every line nginx has buffered so far: the roles
    write it through a buffer (mtls_nginx_access_log_buffer). ``nginx -s reopen`` makes every
    worker flush now (as logrotate does); the log is read once it stops growing."""
    path = "/var/log/nginx/%s.access.log" % config_name
    host.run_expect([0], "nginx -s reopen")
    content = None
    for _attempt in range(20):
        time.sleep(0.25)
        latest = host.file(path).content_string
        if latest == content:
            return content
        content = latest
    return content


class Response:
    def __init__(self, status, body):
        self.status = status
        self.body = body

    def json(self):
        return json.loads(self.body)


def curl(host, url, *options):
    """Send one request with curl on ``host``; the status comes back even for 4xx/5xx."""
    cmd = "curl -sS --max-time 10 -o /tmp/curl.body -w '%{http_code}' " + " ".join(
        shlex.quote(o) for o in options) + " " + shlex.quote(url)
    out = host.run(cmd)
    assert out.rc == 0, "curl failed on %s: %s" % (host.backend.get_hostname(), out.stderr)
    return Response(int(out.stdout), host.file("/tmp/curl.body").content_string)


def probe(on, **args):
    """Run mtls.nginx.tls_probe on host ``on`` (a real handshake from there) and return its
    result, with ``failed`` true when the module failed (its outcome differed from ``expect``).

    Runs ``ansible -o`` itself: testinfra's host.ansible reads the tree callback, which in
    ansible-core 2.19 no longer records whether a module failed."""
    module_args = " ".join("%s=%s" % (k, shlex.quote(str(v))) for k, v in args.items())
    cmd = ["ansible", "-i", inventory_dir(), "-o", "-m", "mtls.nginx.tls_probe", "-a", module_args,
           on.backend.get_hostname()]
    done = subprocess.run(cmd, env=_ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
    match = re.search(r"^\S+ \| (SUCCESS|FAILED!) => (\{.*\})\s*$", done.stdout, re.M)
    assert match, "no result from %s:\n%s\n%s" % (" ".join(cmd), done.stdout, done.stderr)
    result = json.loads(match.group(2))
    result["failed"] = match.group(1) == "FAILED!"
    return result


def _ansible_env():
    """The environment for Ansible runs whose output a test reads: plain text from the default
    callback, and nothing added to the scenario's converge log."""
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_STDOUT_CALLBACK="default")
    for name in ("ANSIBLE_LOG_PATH", "ANSIBLE_CALLBACKS_ENABLED"):
        env.pop(name, None)
    return env


def inventory_dir():
    return os.path.join(os.environ["MOLECULE_SCENARIO_DIRECTORY"], "inventory")


def run_playbook(playbook, *extra):
    """Run ansible-playbook against the scenario's inventory, as an operator would; returns
    (returncode, output, recap) where recap maps each host to its PLAY RECAP counters."""
    cmd = ["ansible-playbook", "-i", inventory_dir()] + list(extra) + [playbook]
    done = subprocess.run(cmd, env=_ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    recap = {}
    for line in done.stdout.split("PLAY RECAP")[-1].splitlines():
        match = re.match(r"^(\S+)\s*:\s*(.*)$", line.strip())
        if match and "ok=" in match.group(2):
            recap[match.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return done.returncode, done.stdout, recap


def extra_inventory(tmp_path, hosts=None, all_vars=None):
    """A second inventory source in ``tmp_path``, as an operator's host_vars or group_vars would
    add it: ``hosts`` maps host names to their variables, ``all_vars`` are variables of the group
    all. Returns the directory, for ``-i``."""
    group = {}
    if hosts is not None:
        group["hosts"] = hosts
    if all_vars is not None:
        group["vars"] = all_vars
    directory = tmp_path / "inventory"
    directory.mkdir()
    (directory / "hosts.yml").write_text(json.dumps({"all": group}))
    return str(directory)
