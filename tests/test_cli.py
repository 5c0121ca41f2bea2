"""CLI behaviour that belongs to no single sub-package: help, usage errors, exit codes."""

import pytest

from lrdoctor.cli import main


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "serve" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["audit", "report", "serve"])
def test_missing_logdir_is_one_line_and_exit_2(command, tmp_path, capsys):
    argv = [command, str(tmp_path / "nope")]
    if command == "report":
        argv += ["-o", str(tmp_path / "out.html")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "no such logdir" in err and "nope" in err


def test_bad_tag_override_is_rejected(tmp_path, capsys):
    assert main(["audit", str(tmp_path), "--tag", "loss"]) == 2
    assert "SIGNAL=TAG" in capsys.readouterr().err
    assert main(["audit", str(tmp_path), "--tag", "speed=x"]) == 2
    assert "unknown signal" in capsys.readouterr().err


def test_serve_rejects_bad_port_before_reading(tmp_path, capsys):
    assert main(["serve", str(tmp_path), "--port", "70000"]) == 2
    assert "--port" in capsys.readouterr().err


def test_unwritable_report_is_one_line_and_exit_2(tmp_path, capsys):
    logdir = tmp_path / "logs"
    logdir.mkdir()
    assert main(["report", str(logdir), "-o", str(tmp_path / "no" / "such" / "dir" / "a.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lrdoctor: error:") and "a.html" in err and "\n" not in err


def test_serve_on_a_taken_port_is_one_line_and_exit_2(tmp_path, capsys):
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        port = taken.getsockname()[1]
        assert main(["serve", str(tmp_path), "--port", str(port)]) == 2
    finally:
        taken.close()
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("lrdoctor: error:") and str(port) in err
