"""The token through PyKCS11 (_pkcs11): as nginx's worker user in a child process, and on a host
where PyKCS11 is not installed yet (a preflight check goes on with the library alone; anything
that needs the token names the package to install)."""

import os
import pwd
import shutil
import subprocess
import sys
import tempfile

import pytest

from ansible_collections.mtls.nginx.plugins.module_utils import _pkcs11
from ansible_collections.mtls.nginx.plugins.module_utils._pkcs11 import TokenError, ensure_key

SOFTHSM = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "1234-binding"

pytestmark = pytest.mark.skipif(not os.path.exists(SOFTHSM),
                                reason="SoftHSM2 is needed (scripts/setup with MTLS_TEST_TOOLS=1)")


def _make_token(directory, owner=None):
    tokens = os.path.join(directory, "tokens")
    os.mkdir(tokens)
    conf = os.path.join(directory, "softhsm2.conf")
    with open(conf, "w") as handle:
        handle.write("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n" % tokens)
    env = dict(os.environ, SOFTHSM2_CONF=conf)
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "unit", "--pin", PIN,
                    "--so-pin", "5678-binding"], check=True, capture_output=True, env=env)
    if owner is not None:
        for root, dirs, names in os.walk(tokens):
            for name in [root] + [os.path.join(root, n) for n in dirs + names]:
                os.chown(name, owner.pw_uid, owner.pw_gid)
    return conf, tokens


@pytest.fixture
def token(tmp_path, monkeypatch):
    conf, _tokens = _make_token(str(tmp_path))
    monkeypatch.setenv("SOFTHSM2_CONF", conf)
    return "unit"


def _nobody():
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        return None


@pytest.mark.skipif(os.geteuid() != 0 or _nobody() is None, reason="needs root and the user nobody")
def test_the_key_is_made_and_checked_as_another_user_in_a_child_process(monkeypatch):
    # Under pytest's tmp_path (0700, root's) nobody could not reach the token directory.
    directory = tempfile.mkdtemp(prefix="mtls-nginx-binding-")
    try:
        os.chmod(directory, 0o755)
        conf, tokens = _make_token(directory, _nobody())
        monkeypatch.setenv("SOFTHSM2_CONF", conf)
        made = ensure_key(SOFTHSM, "unit", PIN, "tier", user="nobody")
        assert (made["changed"], made["exists"]) == (True, True)
        assert made["public_key_pem"].startswith("-----BEGIN PUBLIC KEY-----")
        again = ensure_key(SOFTHSM, "unit", PIN, "tier", user="nobody", state="check")
        assert (again["exists"], again["key_id"]) == (True, made["key_id"])
        # The key belongs to nobody's token objects: root sees the same key.
        assert ensure_key(SOFTHSM, "unit", PIN, "tier", state="check")["key_id"] == made["key_id"]
        # A token directory the worker user cannot reach is named as a problem, from the child.
        os.chmod(tokens, 0o700)
        os.chown(tokens, 0, 0)
        with pytest.raises(TokenError):
            ensure_key(SOFTHSM, "unit", PIN, "tier", user="nobody", state="check")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_token_sessions_one_after_another_and_the_library_finalised_between(token):
    """Each Token initialises the library and finalises it when it closes, so that a child
    process forked later starts from a library nobody initialised."""
    for _attempt in range(3):
        session = _pkcs11.Token(SOFTHSM, token, PIN)
        session.close()
        session.close()  # twice is harmless
    PyKCS11 = pytest.importorskip("PyKCS11")
    loaded = getattr(PyKCS11.PyKCS11Lib, "_loaded_libs", {})
    assert SOFTHSM not in loaded


def test_the_ckr_names_come_from_pykcs11():
    assert _pkcs11._rv_name(0xA0) == "CKR_PIN_INCORRECT"
    assert _pkcs11._rv_name(0x7777) == "CKR 0x7777"


def test_without_pykcs11_a_check_goes_on_with_the_library_alone(token, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "PyKCS11", None)
    assert _pkcs11.binding_installed() is False
    result = ensure_key(SOFTHSM, token, PIN, "tier", state="check", engine_path=str(tmp_path / "no-engine.so"))
    assert (result["exists"], result["changed"]) == (False, False)
    # The library is still checked.
    with pytest.raises(TokenError, match=r"PKCS#11 module /usr/lib/nope\.so: no such file"):
        ensure_key("/usr/lib/nope.so", token, PIN, "tier", state="check")
    # Once the packages are installed (engine_required), and to make a key, PyKCS11 is needed.
    for kwargs in (dict(state="check", engine_required=True), dict(state="present")):
        with pytest.raises(TokenError, match=r"PyKCS11 is not installed on this host .*python3-pykcs11 on Debian, "
                                             r"PyKCS11 from PyPI"):
            ensure_key(SOFTHSM, token, PIN, "tier", **kwargs)
