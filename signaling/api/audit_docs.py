"""docs/architecture.md's table of audit actions, generated from the closed set
(signaling/audit_actions.py: ``AuditAction`` and what each action records).

Run ``python -m signaling.api.audit_docs`` from the repository root after adding or changing an
action: it rewrites the table between the marker comments and nothing else. ``--check`` only
compares (exit 1 when the committed table is stale); ``--markdown`` prints the table.
tests/test_docs_contract.py fails while the committed table differs from this one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from signaling.api.error_docs import with_table
from signaling.audit_actions import AUDITED_ACTIONS, MEANINGS

BEGIN = "<!-- audit-actions:begin -->"
END = "<!-- audit-actions:end -->"
ARCHITECTURE_DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def actions_table() -> str:
    lines = [
        "<!-- Generated from signaling/audit_actions.py by `python -m signaling.api.audit_docs`: "
        "edit there, not here. -->",
        "",
        "| action | recorded when |",
        "|---|---|",
    ]
    lines += [f"| `{action}` | {MEANINGS[action]} |" for action in AUDITED_ACTIONS]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m signaling.api.audit_docs", description=__doc__)
    parser.add_argument("doc", nargs="?", type=Path, default=ARCHITECTURE_DOC)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 when the table is stale")
    mode.add_argument("--markdown", action="store_true", help="print the table only")
    args = parser.parse_args(argv)
    table = actions_table()
    if args.markdown:
        sys.stdout.write(table)
        return 0
    text = args.doc.read_text()
    updated = with_table(text, table, (BEGIN, END))
    if args.check:
        if updated != text:
            print(
                f"{args.doc}: the audit actions' table is stale; "
                "run python -m signaling.api.audit_docs"
            )
            return 1
        return 0
    if updated != text:
        args.doc.write_text(updated)
        print(f"{args.doc}: audit actions' table rewritten ({len(AUDITED_ACTIONS)} actions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
