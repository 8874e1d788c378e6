"""The handshake matrix; the tests are shared by the Debian 12 and 13 scenarios."""

from matrix_tests import *  # noqa: F401,F403  pylint: disable=wildcard-import,unused-wildcard-import
