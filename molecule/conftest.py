"""What every scenario's tests share, loaded by pytest for all of them (molecule/pytest.ini makes
molecule/ the rootdir): the helpers in molecule/resources/tests and the certificate factory of the
unit tests (tests/unit/pkifactory.py) become importable, and the fixtures by tier are provided:
upstream and proxy (the first host of their group), upstreams and proxies (all of them), and
each_upstream, which runs a test once for every host of mtls_upstreams (named by the host)."""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(_HERE, "resources", "tests"))
sys.path.append(os.path.join(os.path.dirname(_HERE), "tests", "unit"))

import testinfra  # noqa: E402
from mtls_testing import proxies, proxy, upstream, upstreams  # noqa: E402

# Imported for pytest, which finds fixtures in a conftest's namespace.
__all__ = ["proxies", "proxy", "upstream", "upstreams"]


def pytest_generate_tests(metafunc):
    """``each_upstream``: the test runs once for every upstream host of the scenario's inventory."""
    if "each_upstream" in metafunc.fixturenames:
        hosts = testinfra.get_hosts(["ansible://mtls_upstreams"], ansible_inventory=metafunc.config.option.ansible_inventory)
        metafunc.parametrize("each_upstream", hosts, ids=[host.backend.get_hostname() for host in hosts])
