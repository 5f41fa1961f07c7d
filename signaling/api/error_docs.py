"""docs/protocol.md's error table, generated from the error registry (signaling/errors.py).

Run ``python -m signaling.api.error_docs`` from the repository root after adding or changing an
error: it rewrites the table between the marker comments and nothing else. ``--check`` only
compares (exit 1 when the committed table is stale); ``--markdown`` prints the table.
tests/test_docs_contract.py fails while the committed table differs from this one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from signaling.errors import KINDS, ErrorKind

BEGIN = "<!-- errors:begin -->"
END = "<!-- errors:end -->"
PROTOCOL_DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
# The close code of an error refused during the join that has none of its own
# (signaling/live/connection.py closes with this; kept here as a literal so this module needs
# nothing of the live side).
JOIN_REFUSED = 4400


def websocket_kinds() -> list[ErrorKind]:
    """Every error a WebSocket client may meet, in registry order: the ones marked as sent on
    the socket, and any with a close code (a code added without ``websocket=`` still shows)."""
    return [k for k in KINDS.values() if k.websocket is not None or k.close_code is not None]


def close_column(kind: ErrorKind) -> str:
    phase = kind.websocket.phase if kind.websocket is not None else "any"
    if phase == "handshake":
        return f"HTTP {kind.http_status}"
    if kind.close_code is not None:
        return str(kind.close_code)
    if phase == "join":
        return str(JOIN_REFUSED)
    if phase == "room":
        return "socket kept"
    return f"{JOIN_REFUSED} before the join; socket kept after"


def websocket_table() -> str:
    lines = [
        "<!-- Generated from signaling/errors.py by `python -m signaling.api.error_docs`: "
        "edit there, not here. -->",
        "",
        "| code | close | when | message |",
        "|---|---|---|---|",
    ]
    for kind in websocket_kinds():
        when = kind.websocket.when if kind.websocket is not None else kind.message
        lines.append(f"| `{kind.code}` | {close_column(kind)} | {when} | {kind.message} |")
    return "\n".join(lines) + "\n"


def with_table(text: str, table: str, markers: tuple[str, str] = (BEGIN, END)) -> str:
    """``text`` with the part between the markers replaced by ``table`` (the audit actions'
    table, signaling/api/audit_docs.py, has markers of its own)."""
    first, last = markers
    head, begin, rest = text.partition(first)
    _, end, tail = rest.partition(last)
    if not begin or not end:
        raise ValueError(f"the document lacks the {first} / {last} markers")
    return f"{head}{first}\n{table}{last}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m signaling.api.error_docs", description=__doc__)
    parser.add_argument("doc", nargs="?", type=Path, default=PROTOCOL_DOC)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 when the table is stale")
    mode.add_argument("--markdown", action="store_true", help="print the table only")
    args = parser.parse_args(argv)
    table = websocket_table()
    if args.markdown:
        sys.stdout.write(table)
        return 0
    text = args.doc.read_text()
    updated = with_table(text, table)
    if args.check:
        if updated != text:
            print(f"{args.doc}: the error table is stale; run python -m signaling.api.error_docs")
            return 1
        return 0
    if updated != text:
        args.doc.write_text(updated)
        print(f"{args.doc}: error table rewritten ({len(websocket_kinds())} codes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
