"""The docsite's playbooks page (docs/docsite/rst/playbooks.rst) is what scripts/playbooks-page
makes from the comment each playbook starts with: a playbook whose header changed, or a new
playbook, fails here until the page is made again."""

import glob
import importlib.machinery
import importlib.util
import os

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GENERATOR = os.path.join(ROOT, "scripts", "playbooks-page")


def _generator():
    loader = importlib.machinery.SourceFileLoader("playbooks_page", GENERATOR)
    spec = importlib.util.spec_from_loader("playbooks_page", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


playbooks_page = _generator()
PLAYBOOKS = sorted(os.path.splitext(os.path.basename(path))[0] for path in glob.glob(os.path.join(ROOT, "playbooks", "*.yml")))


def _page():
    with open(os.path.join(ROOT, playbooks_page.PAGE), encoding="utf-8") as handle:
        return handle.read()


def test_the_page_is_what_the_playbooks_headers_make():
    assert _page() == playbooks_page.render(), \
        "%s differs from the playbooks' headers; run scripts/playbooks-page" % playbooks_page.PAGE


@pytest.mark.parametrize("name", PLAYBOOKS)
def test_every_playbook_is_on_the_page(name):
    page = _page()
    assert ".. _%s.%s:\n" % (playbooks_page.LABEL, name) in page
    assert "\nmtls.nginx.%s\n" % name in page
    # Each line of its header is on the page (prose may be joined into one line, so by words).
    words = " ".join(playbooks_page.header(os.path.join(ROOT, "playbooks", name + ".yml"))).split()
    assert words, "playbooks/%s.yml starts with no comment" % name
    assert words[0].strip("`") in page


def test_header_blocks():
    lines = ["What it does, in two", "lines.", "", "- an item", "  continued", "- another",
             "Variables:", "  name   what it is", "         more", "  ansible-playbook mtls.nginx.x"]
    assert playbooks_page.blocks(lines) == [
        ("text", ["What it does, in two", "lines."]),
        ("item", ["an item", "continued"]),
        ("item", ["another"]),
        ("text", ["Variables:"]),
        ("literal", ["  name   what it is", "         more", "  ansible-playbook mtls.nginx.x"]),
    ]


@pytest.mark.parametrize("text, rst", [
    ("run as `ansible-playbook mtls.nginx.site -i inventory`.", "run as ``ansible-playbook mtls.nginx.site -i inventory``."),
    ("ca-next.* and a|b", "ca-next.\\* and a\\|b"),
    ("name_ here", "name\\_ here"),
    ("`x`s", "``x``\\ s"),
])
def test_inline_rst(text, rst):
    assert playbooks_page._inline(text) == rst  # pylint: disable=protected-access
