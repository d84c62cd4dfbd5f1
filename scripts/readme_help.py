"""Regenerate (or ``--check``) the command reference in README.md from the CLI's ``--help``.

Each block sits between ``<!-- help: edge-infer CMD -->`` and ``<!-- /help -->``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"(<!-- help: (?P<cmd>[^>]+?) -->\n)(?P<body>.*?)(<!-- /help -->)", re.S)


def help_text(command: str) -> str:
    from click.testing import CliRunner

    from edge_infer.runtime.cli import cli

    args = command.split()[1:] + ["--help"]
    result = CliRunner().invoke(cli, args, prog_name="edge-infer", terminal_width=100)
    if result.exit_code != 0:
        raise SystemExit(f"`{command} --help` failed:\n{result.output}")
    return result.output


def render(text: str) -> str:
    return BLOCK.sub(lambda m: f"{m.group(1)}```\n{help_text(m.group('cmd'))}```\n{m.group(4)}",
                     text)


def main() -> int:
    current = README.read_text(encoding="utf-8")
    wanted = render(current)
    if "--check" in sys.argv:
        if current != wanted:
            print("README.md's command reference is out of date: python scripts/readme_help.py")
            return 1
        return 0
    README.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
