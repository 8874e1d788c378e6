"""Each user-facing role's README.md lists every variable of its meta/argument_specs.yml, as
scripts/role-readmes writes it: a README whose generated part drifted from the argument specs
fails here, naming the README. Internal roles' READMEs say that they are internal."""

import importlib.machinery
import importlib.util
import os
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GENERATOR = os.path.join(ROOT, "scripts", "role-readmes")


def _generator():
    loader = importlib.machinery.SourceFileLoader("role_readmes", GENERATOR)
    spec = importlib.util.spec_from_loader("role_readmes", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


role_readmes = _generator()
USER_FACING, INTERNAL = role_readmes.roles()


def test_the_user_facing_roles_are_known():
    assert {"upstream", "proxy", "pki"} <= set(USER_FACING)
    assert "nginx_common" in INTERNAL


@pytest.mark.parametrize("role", USER_FACING)
def test_readme_lists_what_the_argument_specs_declare(role):
    path = os.path.join(ROOT, "roles", role, "README.md")
    with open(path, encoding="utf-8") as handle:
        current = handle.read()
    assert role_readmes.BEGIN in current and role_readmes.END in current, \
        "roles/%s/README.md has no generated section; run scripts/role-readmes" % role
    assert role_readmes.with_section(current, role_readmes.render(role)) == current, \
        "roles/%s/README.md differs from what its meta/argument_specs.yml makes; run scripts/role-readmes" % role


@pytest.mark.parametrize("role", USER_FACING)
def test_every_variable_of_every_user_facing_entry_point_is_listed(role):
    section = role_readmes.render(role)
    for entry_point, spec in role_readmes.argument_specs(role).items():
        heading = "### Entry point `%s`:" % entry_point
        if role_readmes.is_internal(spec):
            assert heading not in section
            continue
        assert heading in section
        for name in spec.get("options") or {}:
            assert "#### `%s`\n" % name in section, "%s (%s) is not in the README" % (name, entry_point)


def test_internal_entry_points_are_left_out():
    section = role_readmes.render("nginx_common")
    assert "### Entry point `main`:" in section
    for entry_point in ("record", "tier", "preflight", "rotate", "revocation", "helpers"):
        assert "### Entry point `%s`:" % entry_point not in section


@pytest.mark.parametrize("role", INTERNAL)
def test_internal_role_readme_says_it_is_internal(role):
    path = os.path.join(ROOT, "roles", role, "README.md")
    if not os.path.exists(path):
        pytest.skip("roles/%s has no README.md" % role)
    with open(path, encoding="utf-8") as handle:
        introduction = handle.read().split("\n## ", 1)[0]
    assert "internal" in introduction.lower(), "roles/%s/README.md does not say first that the role is internal" % role
    assert role_readmes.BEGIN not in introduction


@pytest.mark.parametrize("markup, markdown", [
    ("C(ssl_verify_client on) and V(false)", "`ssl_verify_client on` and `false`"),
    ("see O(mtls_upstream_listen)", "see `mtls_upstream_listen`"),
    ("O(mtls_upstream_certificate_source=files)", "`mtls_upstream_certificate_source=files`"),
    ("O(mtls.nginx.upstream#role:rotate:mtls_upstream_record)", "`mtls_upstream_record` (entry point `rotate`)"),
    ("O(mtls.nginx.nginx_common#role:main:mtls_nginx_verify_depth)",
     "`mtls_nginx_verify_depth` (of `mtls.nginx.nginx_common`, entry point `main`)"),
    ("P(mtls.nginx.pki#role) and M(mtls.nginx.ca)", "`mtls.nginx.pki` and `mtls.nginx.ca`"),
    ("I(never) B(twice) U(https://example.org/)", "*never* **twice** <https://example.org/>"),
    ("L(RFC 5280,https://www.rfc-editor.org/rfc/rfc5280)", "[RFC 5280](https://www.rfc-editor.org/rfc/rfc5280)"),
    ("V(a\\)b) E(HOME) RV(mtls.nginx.ca#module:serial)", "`a)b` `HOME` `serial`"),
    ("a <service> [x] *y* _z_ with C(`tick`)", "a \\<service> \\[x\\] \\*y\\* \\_z\\_ with `` `tick` ``"),
    ("PKCS#11 and mtls_pki_dir stay as they are", "PKCS#11 and mtls_pki_dir stay as they are"),
])
def test_doc_markup_becomes_markdown(markup, markdown):
    assert role_readmes.markdown(markup, "upstream", "main") == markdown


@pytest.mark.parametrize("value, text", [
    (["8443"], "['8443']"), ("4s", "4s"), ("", "''"), (True, "true"), (None, "null"),
    ({"path": "/", "allowed_subjects": []}, "{path: /, allowed_subjects: []}"),
])
def test_defaults_are_yaml(value, text):
    assert role_readmes.yaml_value(value) == text


def test_check_mode_changes_nothing_and_passes():
    before = {}
    for role in USER_FACING:
        with open(os.path.join(ROOT, "roles", role, "README.md"), encoding="utf-8") as handle:
            before[role] = handle.read()
    result = subprocess.run([sys.executable, GENERATOR, "--check"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    for role in USER_FACING:
        with open(os.path.join(ROOT, "roles", role, "README.md"), encoding="utf-8") as handle:
            assert handle.read() == before[role]


def test_check_mode_names_the_readme_that_differs(tmp_path, monkeypatch):
    """Against a copy of the roles whose README lost a variable, --check fails naming it."""
    for role in USER_FACING:
        for sub in ("meta",):
            os.makedirs(tmp_path / "roles" / role / sub)
            for name in ("main.yml", "argument_specs.yml"):
                source = os.path.join(ROOT, "roles", role, sub, name)
                if os.path.exists(source):
                    with open(source, encoding="utf-8") as handle:
                        (tmp_path / "roles" / role / sub / name).write_text(handle.read(), encoding="utf-8")
        with open(os.path.join(ROOT, "roles", role, "README.md"), encoding="utf-8") as handle:
            text = handle.read()
        if role == "proxy":
            text = text.replace("#### `mtls_proxy_listen`", "#### `mtls_proxy_listen_changed_by_hand`")
        (tmp_path / "roles" / role / "README.md").write_text(text, encoding="utf-8")
    monkeypatch.setattr(role_readmes, "ROOT", str(tmp_path))
    assert role_readmes.main(["--check"]) == 1
    assert [found[0] for found in role_readmes.differing(write=False)] == [os.path.join("roles", "proxy", "README.md")]
