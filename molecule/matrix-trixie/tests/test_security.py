"""Attacks over time and beside the operator's configuration; shared by the Debian 12 and 13 scenarios."""

from security_tests import *  # noqa: F401,F403  pylint: disable=wildcard-import,unused-wildcard-import
