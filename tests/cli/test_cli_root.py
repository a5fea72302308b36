"""The lazy root of the ``medai`` command line: ``medai --help`` lists every command without
importing any command's module (so no platform, torch or model), a command imports its own
module when it runs, and each entry's listing line agrees with the command it names."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from medai.cli import COMMANDS, app, load

runner = CliRunner()

HEAVY = ("medai.platform", "medai.cli.", "torch", "transformers", "monai")


def _imported_after(args: list[str]) -> tuple[int, list[str], str]:
    """Run ``medai ARGS`` in a fresh interpreter: its exit code, the heavy modules it
    imported and its output."""
    code = (
        "import json, sys\n"
        "from typer.testing import CliRunner\n"
        "from medai.cli import app\n"
        f"r = CliRunner().invoke(app, {args!r})\n"
        f"heavy = sorted(m for m in sys.modules if m.startswith({HEAVY!r}))\n"
        "print(json.dumps({'code': r.exit_code, 'heavy': heavy, 'out': r.output}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return out["code"], out["heavy"], out["out"]


def test_the_listing_names_every_command_and_imports_none_of_them():
    code, heavy, out = _imported_after(["--help"])
    assert code == 0, out
    assert heavy == []
    for name in COMMANDS:
        assert f" {name} " in out, name


def test_a_command_imports_its_own_module_only():
    code, heavy, out = _imported_after(["version", "--json"])
    assert code == 0 and json.loads(out)["version"]
    assert heavy == ["medai.cli.common", "medai.cli.version"]
    code, heavy, out = _imported_after(["users", "--help"])
    assert code == 0 and "add" in out
    assert "medai.cli.users" in heavy
    assert not [
        m for m in heavy if m.startswith(("medai.cli.imaging", "medai.cli.models", "torch"))
    ]


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_entry_loads_the_command_it_lists(name):
    command = load(name)
    assert command.name == name
    summary = COMMANDS[name].summary
    if isinstance(command, typer.core.TyperGroup):  # a group: its help is the entry
        assert command.help == summary and command.commands
    else:  # one command: the entry is the start of its docstring, its line in the listing
        assert command.short_help == summary
        first_words = " ".join(summary.split()[:5])
        assert " ".join(command.help.split()).startswith(first_words), (name, command.help)
    result = runner.invoke(app, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert " ".join(summary.split()[:3]) in " ".join(result.output.split())


def test_an_unknown_command_is_refused_by_name():
    result = runner.invoke(app, ["trаige"])  # a Cyrillic а
    assert result.exit_code == 2
    assert "No such command" in result.output
