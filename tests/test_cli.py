"""The command line as users meet it: a real subprocess."""

from __future__ import annotations

from conftest import run_cli


def test_version_runs_as_module() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("irsa-webhook ")


def test_unknown_command_is_one_line_and_exit_2() -> None:
    result = run_cli("no-such-command")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
