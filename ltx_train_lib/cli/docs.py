"""``python -m ltx_train_lib.cli.docs``: rewrite the generated parts of the docs from the schemas.

Today that is the options table of docs/preprocessing.md, made from :class:`ltx_train_lib.precompute.PrecomputeConfig`
(see :func:`ltx_train_lib.cli.preprocess.options_table`). The table sits between two marker comments; everything
outside them is written by hand. ``--check`` only reports (exit 1) when a table is stale; tests/test_precompute.py
runs the same comparison.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ltx_train_lib.errors import ConfigError
from ltx_train_lib.fileio import write_text_atomic

REPO = Path(__file__).resolve().parents[2]
REGENERATE = "python -m ltx_train_lib.cli.docs"
BEGIN = f"<!-- BEGIN generated from PrecomputeConfig: edit the schema, then run `{REGENERATE}` -->"
END = "<!-- END generated -->"


def _preprocessing_table() -> str:
    from ltx_train_lib.cli.preprocess import options_table

    return options_table()


# doc file (relative to the repository) -> the generated block's text
GENERATED: dict[str, Callable[[], str]] = {"docs/preprocessing.md": _preprocessing_table}


def render(text: str, block: str, where: str = "document") -> str:
    """``text`` with the part between the markers replaced by ``block``."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ConfigError(f"{where}: no generated block; put the lines {BEGIN!r} and {END!r} where the table goes")
    return text[: start + len(BEGIN)] + "\n" + block + text[end:]


def stale(repo: Path = REPO) -> list[str]:
    """The doc files whose generated block differs from what the schema gives now."""
    out = []
    for rel, make in GENERATED.items():
        text = (repo / rel).read_text(encoding="utf-8")
        if render(text, make(), rel) != text:
            out.append(rel)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ltx_train_lib.cli.docs", description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="only report stale files (exit 1), change nothing")
    args = p.parse_args(argv)
    try:
        changed = stale()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        for rel in changed:
            print(f"{rel}: generated block is stale; run {REGENERATE}", file=sys.stderr)
        return 1 if changed else 0
    for rel in changed:
        path = REPO / rel
        write_text_atomic(path, render(path.read_text(encoding="utf-8"), GENERATED[rel](), rel))
        print(f"updated {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
