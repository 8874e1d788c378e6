"""Attacks over time and beside the operator's configuration (molecule/resources/tests/security_tests.py)."""

from security_tests import *  # noqa: F401,F403  pylint: disable=wildcard-import,unused-wildcard-import
