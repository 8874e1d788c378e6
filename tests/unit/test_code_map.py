"""The map of the code, in the architecture guide of the documentation site, matches the tree:
every path it names exists, and every role, plugin directory, module_utils file, playbook,
Molecule scenario and script is on it."""

import glob
import os
import re

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MAP_DOCUMENT = os.path.join(ROOT, "docs", "docsite", "rst", "architecture.rst")


def _map_block():
    """The first literal block after "The map of the code" (an RST code-block or "::" block: the
    indented lines after it, up to the first line indented less), dedented."""
    with open(MAP_DOCUMENT, encoding="utf-8") as handle:
        text = handle.read()
    found = re.search(r"The map of the code.*?(?:^\.\. code-block::[^\n]*|::)\n(?:[ \t]*:[^\n]*\n)*\n"
                      r"((?:[ \t]+[^\n]*\n|[ \t]*\n)+)", text, re.S | re.M)
    assert found, "%s has no map of the code (a code block after 'The map of the code')" % MAP_DOCUMENT
    lines = found.group(1).rstrip().split("\n")
    indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    assert indent > 0, "the map of the code in %s is not an indented literal block" % MAP_DOCUMENT
    return "\n".join(line[indent:] for line in lines)


def mapped_paths():
    """Every path on the map: the first column of each line that does not start with a blank,
    comma-separated (a line ending with ',' continues the list on the next line)."""
    paths = []
    for line in _map_block().splitlines():
        if not line or line[0] == " ":
            continue
        head = re.split(r"\s{2,}", line.strip())[0]
        paths.extend(part.strip() for part in head.split(",") if part.strip())
    return paths


def _expected():
    """What must be on the map: each role, plugin directory, module_utils and plugin_utils file,
    playbook, scenario and top-level script of the tree."""
    expected = []
    expected += glob.glob("roles/*")
    # Every plugin directory, and each file of the two whose files are each a part of their own.
    expected += [path for path in glob.glob("plugins/*") if os.path.isdir(path)
                 and os.path.basename(path) not in ("module_utils", "plugin_utils")]
    expected += glob.glob("plugins/module_utils/_*.py") + glob.glob("plugins/plugin_utils/_*.py")
    expected += glob.glob("playbooks/*.yml") + glob.glob("playbooks/tasks/*.yml")
    expected += [os.path.dirname(path) for path in glob.glob("molecule/*/molecule.yml")] + ["molecule/resources"]
    expected += glob.glob("scripts/*")
    expected += glob.glob("tests/*")
    return sorted(set(expected))


def _covered(path, paths):
    return any(path == entry or path.startswith(entry.rstrip("/") + "/") for entry in paths)


def test_every_path_on_the_map_exists():
    os.chdir(ROOT)
    missing = [path for path in mapped_paths() if not glob.glob(path)]
    assert not missing, "on the map but not in the tree: %s" % missing


@pytest.mark.parametrize("path", _expected() if os.path.isdir(os.path.join(ROOT, "roles")) else [])
def test_each_part_of_the_tree_is_on_the_map(path):
    os.chdir(ROOT)
    assert _covered(path, mapped_paths()), "%s is not on the map of the code in %s" % (path, MAP_DOCUMENT)
