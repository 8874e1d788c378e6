"""Fixtures and helpers shared by every scenario live in molecule/resources/tests."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "resources", "tests"))

from mtls_testing import curl, probe, proxies, proxy, run_playbook, upstream, upstreams  # noqa: E402

# Re-exported: pytest finds the fixtures here, the tests import the helpers from here.
__all__ = ["curl", "probe", "proxies", "proxy", "run_playbook", "upstream", "upstreams"]
