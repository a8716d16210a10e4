"""Every option says what it does, and the shells complete the command line.

The completion scripts are checked in the shells themselves: bash always
(``complete -p`` and the completion function filling ``COMPREPLY``), zsh and
fish when they are installed (CI installs them, see ``.ci/run``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from scanner.cli import build_parser, main
from scanner.cli.completion import SHELLS, script


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(build_parser()))


def test_every_option_and_every_command_has_help() -> None:
    missing = []
    for path, parser in COMMANDS:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                missing += [
                    f"{' '.join(path)} {choice.dest}: no help"
                    for choice in action._choices_actions
                    if not choice.help
                ]
            elif not action.help or action.help == argparse.SUPPRESS:
                name = "/".join(action.option_strings) or action.dest
                missing.append(f"{' '.join(path) or 'cors-scanner'} {name}: no help")
    assert missing == []


def test_the_tree_is_what_the_help_walks() -> None:
    # A sanity check that the walk above sees the whole tree, new commands included.
    paths = {" ".join(p) for p, _ in COMMANDS}
    for expected in ("findings list", "hooks deliveries", "workers", "audit", "completion"):
        assert expected in paths


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS if p], ids=" ".join)
def test_every_command_prints_its_help(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*path, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: cors-scanner " + " ".join(path))


@pytest.mark.parametrize("shell", SHELLS)
def test_completion_prints_a_script_for_each_shell(
    shell: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["completion", shell]) == 0
    text = capsys.readouterr().out
    assert text == script(shell)
    for word in ("findings", "regressions", "schedules", "completion", "--format"):
        assert word in text
    assert "cors-scanner" in text


def _bash_complete(script_path: Path, words: list[str]) -> list[str]:
    """What bash offers for the last word of ``words`` (COMPREPLY of the real function)."""
    line = " ".join(words)
    words_array = " ".join(f"'{w}'" for w in words)
    program = f"""
source '{script_path}'
spec=$(complete -p cors-scanner) || exit 3
func=$(sed -E 's/.* -F ([^ ]+) .*/\\1/' <<<"$spec")
COMP_WORDS=({words_array})
COMP_CWORD={len(words) - 1}
COMP_LINE='{line}'
COMP_POINT=${{#COMP_LINE}}
"$func" cors-scanner '{words[-1]}' '{words[-2]}'
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return sorted(w for w in done.stdout.split() if w)


def test_bash_completes_commands_options_and_choices(tmp_path: Path) -> None:
    path = tmp_path / "cors-scanner.bash"
    path.write_text(script("bash"))
    assert _bash_complete(path, ["cors-scanner", "fin"]) == ["findings"]
    assert _bash_complete(path, ["cors-scanner", "findings", "li"]) == ["list"]
    assert _bash_complete(path, ["cors-scanner", "findings", "list", "--for"]) == ["--format"]
    assert _bash_complete(path, ["cors-scanner", "findings", "list", "--format", ""]) == [
        "json",
        "table",
    ]
    assert _bash_complete(path, ["cors-scanner", "completion", ""]) == ["bash", "fish", "zsh"]
    assert "--token-file" in _bash_complete(path, ["cors-scanner", "serve", "--to"])


def test_bash_completes_file_names_for_file_options(tmp_path: Path) -> None:
    path = tmp_path / "cors-scanner.bash"
    path.write_text(script("bash"))
    (tmp_path / "targets.txt").write_text("http://127.0.0.1/\n")
    offered = _bash_complete(path, ["cors-scanner", "scan", "-i", str(tmp_path / "targ")])
    assert offered == [str(tmp_path / "targets.txt")]


def test_fish_completes_a_subcommand_when_fish_is_installed(tmp_path: Path) -> None:
    path = tmp_path / "cors-scanner.fish"
    path.write_text(script("fish"))
    assert "complete -c cors-scanner" in path.read_text()
    fish = shutil.which("fish")
    if fish is None:
        return  # the script's own checks above still ran; CI installs fish
    done = subprocess.run(
        [fish, "--no-config", "-c", f"source {path}; complete -C 'cors-scanner regr'"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert [line.split("\t")[0] for line in done.stdout.splitlines()] == ["regressions"]


def test_zsh_loads_the_script_when_zsh_is_installed(tmp_path: Path) -> None:
    path = tmp_path / "_cors-scanner"
    path.write_text(script("zsh"))
    assert path.read_text().startswith("#compdef cors-scanner")
    zsh = shutil.which("zsh")
    if zsh is None:
        return  # CI installs zsh
    syntax = subprocess.run(
        [zsh, "-n", str(path)], capture_output=True, text=True, timeout=30, check=False
    )
    assert syntax.returncode == 0, syntax.stderr
    loaded = subprocess.run(
        [
            zsh,
            "-f",
            "-c",
            f"fpath=({tmp_path} $fpath); autoload -Uz compinit; compinit -u -d {tmp_path}/.zcompdump; "
            "print -r -- ${_comps[cors-scanner]}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "_cors-scanner"


def test_the_installed_entry_point_prints_the_script() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "scanner", "completion", "bash"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "complete " in done.stdout
