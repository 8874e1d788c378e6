"""The handshake matrix (molecule/resources/tests/matrix_tests.py, whose helpers other scenarios use)."""

from matrix_tests import *  # noqa: F401,F403  pylint: disable=wildcard-import,unused-wildcard-import
