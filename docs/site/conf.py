"""Sphinx configuration of the documentation site that scripts/docs builds (from a copy of this
folder, with antsibull-docs' pages of the collection in collection/). Offline: no intersphinx
inventories to fetch, and a theme that ships its fonts and scripts. Warnings fail the build
(scripts/docs runs sphinx-build -W --keep-going), and every reference is checked (nitpicky)."""

import os
import re

import yaml
from docutils import nodes

# The collection's galaxy.yml, from the checkout (or copy) scripts/docs builds.
with open(os.path.join(os.environ["MTLS_ROOT"], "galaxy.yml"), encoding="utf-8") as _handle:
    GALAXY = yaml.safe_load(_handle)

project = "mtls.nginx"
copyright = "mtls.nginx developers, %s" % ", ".join(GALAXY["license"])  # pylint: disable=redefined-builtin
author = "mtls.nginx developers"
release = version = str(GALAXY["version"])

title = "mtls.nginx documentation"
html_short_title = "mtls.nginx"
html_title = "mtls.nginx %s documentation" % release

# sphinx_antsibull_ext renders antsibull-docs' pages (option tables, :ansplugin: and the like).
extensions = ["sphinx_antsibull_ext"]

pygments_style = "ansible"
highlight_language = "YAML+Jinja"

html_theme = "sphinx_ansible_theme"
html_theme_options = {
    # Nothing that would load from another site: no side banner, no ads, no trackers.
    "show_extranav": False,
    "show_rtd_ethical_ads": False,
    "satellite_tracking": False,
    "collapse_navigation": False,
    "navigation_depth": 3,
    "display_version": True,
    # The theme's default top bar links to Ansible's blog and forum; this site's to its project.
    "topbar_links": {"Repository": GALAXY["repository"], "Issues": GALAXY["issues"]},
}
html_show_sphinx = False
html_use_smartypants = True
html_use_modindex = False
html_use_index = False
html_copy_source = False
html_last_updated_fmt = None

# antsibull-docs writes an index of the environment variables that plugins declare; this
# collection's declare none, and that page points into ansible-core's documentation, which an
# offline build cannot link.
exclude_patterns = ["collection/environment_variables.rst"]

default_role = "any"
nitpicky = True

# antsibull-docs' pages link to ansible-core's documentation (ansible.builtin plugins, the common
# return values), which a full Ansible docsite or intersphinx would resolve. Offline, those few
# references become plain links to docs.ansible.com; every other unresolved reference still fails.
ANSIBLE_DOCS = "https://docs.ansible.com/ansible/latest/"
_ANSIBLE_LABELS = {"common_return_values": "reference_appendices/common_return_values.html"}
_BUILTIN_PLUGIN = re.compile(r"^ansible_collections\.ansible\.builtin\.(\w+_(?:module|[a-z]+))(?:__(.+))?$")


def _ansible_docs_link(app, env, node, contnode):  # pylint: disable=unused-argument
    if node.get("refdomain") != "std" or node.get("reftype") != "ref":
        return None
    target = node.get("reftarget", "")
    if target in _ANSIBLE_LABELS:
        uri = ANSIBLE_DOCS + _ANSIBLE_LABELS[target]
    else:
        found = _BUILTIN_PLUGIN.match(target)
        if not found:
            return None
        uri = ANSIBLE_DOCS + "collections/ansible/builtin/%s.html" % found.group(1)
        if found.group(2):
            uri += "#" + found.group(2)
    reference = nodes.reference("", "", internal=False, refuri=uri)
    reference += contnode
    return reference


def setup(app):
    app.connect("missing-reference", _ansible_docs_link)
