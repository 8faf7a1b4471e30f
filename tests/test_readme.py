"""The README's two opening commands are the project's contract with a new user and with CI."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands():
    return re.findall(r"```bash\n(.+?)\n```", (ROOT / "README.md").read_text())


def test_readme_opens_with_two_commands():
    commands = _readme_commands()
    assert len(commands) >= 2
    install_and_run, test = commands[:2]
    assert "pip install" in install_and_run and "arbstyle" in install_and_run
    assert "pip install" in test and "[test]" in test and "pytest" in test


def test_ci_runs_both_readme_commands_verbatim_in_a_fresh_virtualenv():
    ci = (ROOT / ".ci" / "run").read_text()
    lines = ci.splitlines()
    install_and_run, test = _readme_commands()[:2]
    assert test in lines and install_and_run in lines
    venv = next(i for i, line in enumerate(lines) if "-m venv" in line)
    assert "--system-site-packages" not in lines[venv]
    assert venv < lines.index(test) < lines.index(install_and_run)
    assert any(line.startswith(". ") and "/bin/activate" in line for line in lines[venv:lines.index(test)])


def test_console_script_is_declared():
    from arbstyle import cli

    assert 'arbstyle = "arbstyle.cli:run"' in (ROOT / "pyproject.toml").read_text()
    assert callable(cli.run)
