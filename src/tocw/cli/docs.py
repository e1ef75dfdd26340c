"""Generate docs/cli.md, the command reference, from the argparse parser itself.

    python -m tocw.cli.docs > docs/cli.md

The reference is every command's `--help`, in parser order, so it cannot drift from the code;
a test regenerates it and compares it with the committed file. Help is rendered at a fixed
width (COLUMNS=100) so the output does not depend on the terminal it was generated in.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator

from tocw.cli.main import build_parser

WIDTH = "100"
HEADER = """# `tocw` command reference

Generated from the argparse parser by `python -m tocw.cli.docs > docs/cli.md`; do not edit by
hand (a test checks this file is current). See docs/quickstart.md for a walk-through.
"""


def _subcommands(
    parser: argparse.ArgumentParser,
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """(name, parser) of each direct sub-command, in registration order."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen: set[int] = set()
            for name, sub in action.choices.items():
                if id(sub) not in seen:
                    seen.add(id(sub))
                    yield name, sub


def _walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for name, sub in _subcommands(parser):
        yield from _walk(sub, (*path, name))


def render() -> str:
    """The whole reference as Markdown."""
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH
    try:
        parser = build_parser()
        parts = [HEADER]
        commands = [" ".join(path) for path, _ in _walk(parser) if path]
        parts.append("## Commands\n")
        parts.extend(f"- [`tocw {c}`](#tocw-{c.replace(' ', '-')})" for c in commands)
        parts.append("")
        for path, sub in _walk(parser):
            title = " ".join(("tocw", *path))
            parts.append(f"## {title}\n")
            parts.append("```text")
            parts.append(sub.format_help().rstrip())
            parts.append("```\n")
        return "\n".join(parts)
    finally:
        if previous is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = previous


def main() -> int:
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
