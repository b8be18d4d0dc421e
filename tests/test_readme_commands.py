"""Every command README.md shows answers `--help`: the installed `kiosk` and `kiosk-central`
scripts, walked down to the subcommand each line names, and the `make` targets."""
from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = {"kiosk": "kiosk.cli", "kiosk-central": "kiosk.central.cli"}


def readme_commands() -> list[list[str]]:
    """The commands in README.md's sh blocks that run `kiosk`, `kiosk-central` or `make`."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = re.split(r"\s#\s", line)[0]                 # the comment after the command
            for part in line.split("|"):                       # each side of a pipe
                words = shlex.split(part.replace("...", "x"))
                if words and Path(words[0]).name in (*SCRIPTS, "make"):
                    commands.append([Path(words[0]).name, *words[1:]])
    return commands


def command_path(script: str, words: list[str]) -> list[str]:
    """The group and subcommand names in `words`, skipping options and their values."""
    import importlib

    command = importlib.import_module(SCRIPTS[script]).main
    path = []
    words = iter(words)
    for word in words:
        if word.startswith("-"):
            option = next((p for p in command.params if word.split("=")[0] in p.opts), None)
            assert option is not None, f"`{script} {' '.join(path)}` has no option {word}"
            if not option.is_flag and "=" not in word:
                next(words, None)
        elif isinstance(command, click.Group):
            assert word in command.commands, f"`{script} {' '.join(path)}` has no subcommand {word!r}"
            command = command.commands[word]
            path.append(word)
        else:
            break                                              # an argument: the command is found
    return path


COMMANDS = readme_commands()


def test_the_readme_shows_both_scripts_and_the_make_targets():
    shown = {(c[0], c[1] if len(c) > 1 else "") for c in COMMANDS}
    for expected in (("kiosk", "decode"), ("kiosk", "verify"), ("kiosk-central", "--db"), ("make", "demo"),
                     ("make", "test"), ("make", "bench")):
        assert expected in shown, expected


@pytest.mark.parametrize("words", [c for c in COMMANDS if c[0] != "make"], ids=lambda c: " ".join(c)[:60])
def test_each_kiosk_command_answers_help(words):
    script, *rest = words
    path = command_path(script, rest)
    # The installed console script, beside the interpreter (make puts both in .venv/bin/).
    executable = Path(sys.executable).with_name(script)
    result = subprocess.run([str(executable), *path, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Usage: {script} {' '.join(path)}".rstrip()), result.stdout


@pytest.mark.parametrize("target", sorted({c[1] for c in COMMANDS if c[0] == "make"}))
def test_each_make_target_exists(target):
    # -n prints what the target would do without doing it; an unknown target exits 2.
    result = subprocess.run(["make", "-n", "-C", str(ROOT), target], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
