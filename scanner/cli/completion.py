"""`cors-scanner completion bash|zsh|fish`: a shell completion script, printed.

The script is generated from the command line's own argparse tree by shtab,
so it knows every command, option and choice of the installed version, and it
is static: pressing TAB runs no Python (starting the CLI imports aiohttp,
SQLAlchemy and the rest, about a second per keystroke on a busy machine, which
is why a dynamic completer such as argcomplete is not used). Options whose
value is a file (``FILE`` metavars, ``-o``) complete file names.

Install it once (README, "Shell completion"):

    bash:  cors-scanner completion bash > ~/.local/share/bash-completion/completions/cors-scanner
    zsh:   cors-scanner completion zsh > "${fpath[1]}/_cors-scanner"
    fish:  cors-scanner completion fish > ~/.config/fish/completions/cors-scanner.fish

Regenerate it after an upgrade that adds commands.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from typing import Any

import shtab

from scanner.cli import EXIT_OK, build_parser
from scanner.settings import Settings

SHELLS = ("bash", "zsh", "fish")
# Options that name a file to read or write: TAB completes paths there.
_FILE_METAVARS = frozenset({"FILE"})
_FILE_DESTS = frozenset({"output", "file", "input", "token_file", "ca_bundle"})


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser(
        "completion",
        help="print a shell completion script (bash, zsh or fish)",
        description=(
            "Print the completion script of SHELL on standard output. Install it with, e.g., "
            "`cors-scanner completion bash > ~/.local/share/bash-completion/completions/"
            'cors-scanner` (bash), `cors-scanner completion zsh > "${fpath[1]}/_cors-scanner"` '
            "(zsh) or `cors-scanner completion fish > ~/.config/fish/completions/"
            "cors-scanner.fish` (fish), then start a new shell."
        ),
    )
    p.add_argument("shell", choices=SHELLS, help="the shell to complete in")
    p.set_defaults(handler=_completion)


def script(shell: str) -> str:
    """The completion script of ``shell`` for the whole command line."""
    parser = build_parser()
    for action in _actions(parser):
        if action.metavar in _FILE_METAVARS or action.dest in _FILE_DESTS:
            action.complete = shtab.FILE  # type: ignore[attr-defined]
    text = shtab.complete(parser, shell=shell)
    return text if text.endswith("\n") else text + "\n"


def _actions(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                yield from _actions(sub)
        else:
            yield action


def _completion(args: argparse.Namespace, settings: Settings) -> int:
    sys.stdout.write(script(args.shell))
    return EXIT_OK
