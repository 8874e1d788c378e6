"""Hosts of the scenario by tier, and helpers that send real requests from inside them."""

import json
import shlex

import pytest
import testinfra


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
