"""What every scenario's tests share, loaded by pytest for all of them (molecule/pytest.ini makes
molecule/ the rootdir): the helpers in molecule/resources/tests and the certificate factory of the
unit tests (tests/unit/pkifactory.py) become importable, and the fixtures by tier are provided."""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(_HERE, "resources", "tests"))
sys.path.append(os.path.join(os.path.dirname(_HERE), "tests", "unit"))

from mtls_testing import proxies, proxy, upstream, upstreams  # noqa: E402

# Imported for pytest, which finds fixtures in a conftest's namespace.
__all__ = ["proxies", "proxy", "upstream", "upstreams"]
