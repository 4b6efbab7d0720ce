"""``worldfeed sql "SELECT ..." [--format table|csv|json]``: query a running stack.

The query goes to the API's read-only SQL endpoint (``POST /admin/sql``, the admin
token), so it works on the embedded path, where the ClickHouse engine lives inside the
API process, and on the server path alike. Unqualified table names are the API's
database: ``posts``, ``events``, ``ticks``, ``llm_calls``, ``npc_snapshots``,
``relationship_snapshots``, ``runs``, ``decisions``, ``dead_letters``.
"""

from __future__ import annotations

import csv
import io
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from worldfeed.settings import ROOT, Settings

ADMIN_TOKEN_FILE = ROOT / ".local" / "admin-token"
MAX_CELL = 60  # table cells are cut here; csv and json carry whole values


class SqlError(Exception):
    """The API refused the query or could not be reached; the message says which."""


def admin_token(settings: Settings) -> str:
    """The admin token: a token file where one is configured or written, else the setting."""
    configured = getattr(settings, "admin_token_file", None)
    for candidate in (configured, ADMIN_TOKEN_FILE):
        if (
            candidate
            and Path(candidate).is_file()
            and "admin_token" not in settings.model_fields_set
        ):
            return Path(candidate).read_text(encoding="utf-8").strip()
    return settings.admin_token.get_secret_value()


def run_query(api: str, token: str, query: str, timeout_s: float = 30.0) -> dict[str, Any]:
    """POST the query; the result as the endpoint returns it, or :class:`SqlError`."""
    request = urllib.request.Request(  # noqa: S310 - the user's own API URL
        f"{api.rstrip('/')}/admin/sql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:  # noqa: S310
            result: dict[str, Any] = json.loads(resp.read())
            return result
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("detail")
        except ValueError:
            detail = exc.reason
        raise SqlError(f"{exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise SqlError(
            f"cannot reach the API at {api} ({exc}); is `worldfeed up` running?"
        ) from None


def _cell(value: Any) -> str:
    text = "" if value is None else value if isinstance(value, str) else json.dumps(value)
    text = text.replace("\n", " ")
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def format_result(result: dict[str, Any], fmt: str) -> str:
    """The result as an aligned table, CSV (with a header) or JSON (one object per row)."""
    columns: list[str] = result["columns"]
    rows: list[list[Any]] = result["rows"]
    if fmt == "json":
        return json.dumps([dict(zip(columns, row, strict=True)) for row in rows], indent=2)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(
                ["" if v is None else v if isinstance(v, str) else json.dumps(v) for v in row]
            )
        return out.getvalue().rstrip("\n")
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    numeric = [
        all(isinstance(row[i], int | float) or row[i] is None for row in rows) and bool(rows)
        for i in range(len(columns))
    ]

    def line(values: list[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    out_lines = [line(columns), "  ".join("-" * w for w in widths)]
    out_lines += [line(r) for r in cells]
    note = f"({len(rows)} row{'s' if len(rows) != 1 else ''}"
    note += ", truncated at the row or byte limit)" if result.get("truncated") else ")"
    return "\n".join([*out_lines, note])


def cmd_sql(settings: Settings, query: str, fmt: str, api: str | None) -> int:
    """Run ``query`` through the API and print it; 0, or 1 with the reason on stderr."""
    import sys

    base = api or f"http://{settings.api_host}:{settings.api_port}"
    try:
        result = run_query(base, admin_token(settings), query)
    except SqlError as exc:
        print(f"worldfeed sql: {exc}", file=sys.stderr)
        return 1
    print(format_result(result, fmt))
    return 0
