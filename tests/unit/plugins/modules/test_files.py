"""mtls.nginx.files as Ansible runs it: a set of files in one run, written only when they differ,
nothing written in check mode or when any entry is refused."""

import os
import stat

import pytest

from modulerun import run_module
from ansible_collections.mtls.nginx.plugins.modules import files


def run(args, capsys, check_mode=False):
    return run_module(files, args, capsys, check_mode)


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_writes_each_file_once_then_changes_nothing(tmp_path, capsys):
    script, bundle = tmp_path / "helper", tmp_path / "ca.pem"
    args = {"files": [{"path": str(script), "content": "#!/bin/sh\nexit 0\n", "mode": "0755"},
                      {"path": str(bundle), "content": "-----BEGIN CERTIFICATE-----\n"}]}
    result, failed = run(args, capsys)
    assert not failed and result["changed"] is True
    assert result["paths"] == [str(script), str(bundle)]
    assert script.read_text() == "#!/bin/sh\nexit 0\n" and mode_of(script) == 0o755
    assert bundle.read_text() == "-----BEGIN CERTIFICATE-----\n" and mode_of(bundle) == 0o644
    assert [(d["after_header"], d["before"]) for d in result["diff"]] == [(str(script), ""), (str(bundle), "")]

    result, failed = run(args, capsys)
    assert not failed and result["changed"] is False and result["paths"] == [] and result["diff"] == []


def test_only_the_file_that_differs_is_rewritten_and_shown(tmp_path, capsys):
    first, second = tmp_path / "a.crl", tmp_path / "b.pem"
    first.write_text("old crl\n")
    second.write_text("same\n")
    os.chmod(first, 0o644)
    os.chmod(second, 0o644)
    inode = os.stat(second).st_ino
    result, failed = run({"files": [{"path": str(first), "content": "new crl\n"},
                                    {"path": str(second), "content": "same\n"}]}, capsys)
    assert not failed and result["paths"] == [str(first)]
    assert result["diff"] == [{"before_header": str(first), "after_header": str(first),
                               "before": "old crl\n", "after": "new crl\n"}]
    assert first.read_text() == "new crl\n" and os.stat(second).st_ino == inode


def test_a_mode_alone_is_a_change(tmp_path, capsys):
    path = tmp_path / "helper"
    path.write_text("x\n")
    os.chmod(path, 0o600)
    result, failed = run({"files": [{"path": str(path), "content": "x\n", "mode": "0755"}]}, capsys)
    assert not failed and result["changed"] is True and result["paths"] == [str(path)] and result["diff"] == []
    assert mode_of(path) == 0o755


def test_check_mode_reports_and_writes_nothing(tmp_path, capsys):
    existing, new = tmp_path / "ca.pem", tmp_path / "new.crl"
    existing.write_text("old\n")
    result, failed = run({"files": [{"path": str(existing), "content": "new\n"},
                                    {"path": str(new), "content": "crl\n"}]}, capsys, check_mode=True)
    assert not failed and result["changed"] is True and result["paths"] == [str(existing), str(new)]
    assert existing.read_text() == "old\n" and not new.exists()


@pytest.mark.parametrize("second, message", [
    ({"path": "{dir}/a", "content": "again\n"}, "files[1] ({dir}/a): the same path is named twice"),
    ({"path": "{dir}/b", "content": "b\n", "mode": "u=rwx"}, "files[1] ({dir}/b): mode: 'u=rwx' is not an octal mode"),
    ({"path": "{dir}/b", "content": "b\n", "mode": "0999"}, "files[1] ({dir}/b): mode: '0999' is not an octal mode"),
    ({"path": "{dir}/missing/b", "content": "b\n"}, "files[1] ({dir}/missing/b): directory {dir}/missing does not exist"),
    ({"path": "{dir}", "content": "b\n"}, "files[1] ({dir}): is a directory, not a file"),
])
def test_a_refused_entry_is_named_and_nothing_is_written(tmp_path, capsys, second, message):
    second = {key: value.format(dir=tmp_path) for key, value in second.items()}
    result, failed = run({"files": [{"path": str(tmp_path / "a"), "content": "a\n"}, second]}, capsys)
    assert failed and message.format(dir=tmp_path) in result["msg"]
    assert not (tmp_path / "a").exists()


def test_directories_are_made_first_with_their_mode_then_left_alone(tmp_path, capsys):
    top, tier = tmp_path / "mtls", tmp_path / "mtls" / "tier"
    args = {"directories": [{"path": str(top), "mode": "0750"}, {"path": str(tier), "mode": "0700"}],
            "files": [{"path": str(tier / "ca.pem"), "content": "ca\n"}]}
    result, failed = run(args, capsys, check_mode=True)
    assert not failed and result["paths"] == [str(top), str(tier), str(tier / "ca.pem")] and not top.exists()
    result, failed = run(args, capsys)
    assert not failed and result["paths"] == [str(top), str(tier), str(tier / "ca.pem")]
    assert mode_of(top) == 0o750 and mode_of(tier) == 0o700 and (tier / "ca.pem").read_text() == "ca\n"
    result, failed = run(args, capsys)
    assert not failed and result["changed"] is False and result["paths"] == []
    os.chmod(tier, 0o755)
    result, failed = run(args, capsys)
    assert not failed and result["paths"] == [str(tier)] and mode_of(tier) == 0o700


def test_a_directory_that_is_a_file_is_refused_by_name_and_nothing_is_made(tmp_path, capsys):
    (tmp_path / "a-file").write_text("x\n")
    result, failed = run({"directories": [{"path": str(tmp_path / "new")}, {"path": str(tmp_path / "a-file")}],
                          "files": [{"path": str(tmp_path / "b"), "content": "b\n"}]}, capsys)
    assert failed and "directories[1] (%s/a-file): is a file, not a directory" % tmp_path in result["msg"], result["msg"]
    assert not (tmp_path / "b").exists() and not (tmp_path / "new").exists()


def test_missing_parents_of_a_directory_are_made_as_mkdir_p_makes_them(tmp_path, capsys):
    deep = tmp_path / "srv" / "company" / "mtls"
    result, failed = run({"directories": [{"path": str(deep), "mode": "0750"}],
                          "files": [{"path": str(deep / "x"), "content": "x\n"}]}, capsys)
    assert not failed and result["paths"] == [str(deep), str(deep / "x")] and mode_of(deep) == 0o750


def test_validate_checks_the_new_content_before_it_replaces_the_file(tmp_path, capsys):
    config, later = tmp_path / "site.conf", tmp_path / "later.pem"
    config.write_text("good\n")
    accept = "grep -q good %s"
    args = {"files": [{"path": str(config), "content": "still good\n", "validate": accept},
                      {"path": str(later), "content": "after\n"}]}
    result, failed = run(args, capsys)
    assert not failed and result["paths"] == [str(config), str(later)]
    assert config.read_text() == "still good\n" and later.read_text() == "after\n"
    assert [name for name in os.listdir(tmp_path) if name.startswith(".mtls-")] == []


def test_content_that_fails_validation_leaves_the_old_file_and_stops_there(tmp_path, capsys):
    helper, config, later = tmp_path / "helper", tmp_path / "site.conf", tmp_path / "later.pem"
    config.write_text("good\n")
    args = {"files": [{"path": str(helper), "content": "first\n"},
                      {"path": str(config), "content": "bad\n", "validate": "grep -q good %s"},
                      {"path": str(later), "content": "after\n"}]}
    result, failed = run(args, capsys)
    assert failed
    assert "files[1] (%s): failed to validate, the old file stays" % config in result["msg"]
    assert "grep -q good" in result["msg"] and "exited 1" in result["msg"]
    assert helper.read_text() == "first\n" and config.read_text() == "good\n" and not later.exists()
    assert [name for name in os.listdir(tmp_path) if name.startswith(".mtls-")] == []


def test_validate_runs_only_for_a_change_and_never_in_check_mode(tmp_path, capsys):
    config = tmp_path / "site.conf"
    config.write_text("same\n")
    result, failed = run({"files": [{"path": str(config), "content": "same\n", "validate": "false %s"}]}, capsys)
    assert not failed and result["changed"] is False
    result, failed = run({"files": [{"path": str(config), "content": "new\n", "validate": "false %s"}]}, capsys, check_mode=True)
    assert not failed and result["changed"] is True and config.read_text() == "same\n"


def test_a_validate_command_without_the_file_is_refused_before_anything_is_written(tmp_path, capsys):
    first, config = tmp_path / "first.pem", tmp_path / "site.conf"
    args = {"files": [{"path": str(first), "content": "x\n"},
                      {"path": str(config), "content": "y\n", "validate": "nginx -t"}]}
    result, failed = run(args, capsys)
    assert failed and "files[1] (%s): validate must name the file to test as %%s" % config in result["msg"]
    assert not first.exists() and not config.exists()
