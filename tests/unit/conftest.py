"""Make ``ansible_collections.mtls.nginx`` importable from a plain checkout."""

import os
import sys

_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
_COLLECTIONS = os.path.join(_ROOT, ".build", "collections")
if os.path.basename(os.path.dirname(os.path.dirname(_ROOT))) == "ansible_collections":
    # Already inside an ansible_collections tree (as ansible-test runs it).
    _COLLECTIONS = os.path.dirname(os.path.dirname(os.path.dirname(_ROOT)))
if _COLLECTIONS not in sys.path:
    sys.path.insert(0, _COLLECTIONS)
