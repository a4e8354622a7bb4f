"""Tables and data for access-log results, written through `kubectl_mesh.output.write`."""

from __future__ import annotations

from datetime import datetime
from operator import attrgetter, methodcaller
from typing import IO, Iterable, Sequence

from kubectl_mesh import output
from kubectl_mesh.accesslog.analysis import GroupRow
from kubectl_mesh.accesslog.flags import legend
from kubectl_mesh.accesslog.record import AccessLogRecord

REQUEST_HEADERS = ("TIME", "POD", "CODE", "FLAGS", "METHOD", "AUTHORITY", "PATH", "DURATION",
                   "UPSTREAM")
REQUEST_WIDE_EXTRA = ("DETAILS", "CLUSTER", "ROUTE", "REQUEST ID")
GROUP_LABELS = {"upstream": "UPSTREAM", "cluster": "CLUSTER", "flag": "FLAG", "code": "CODE",
                "route": "ROUTE"}
GROUP_HEADERS = ("COUNT", "ERRORS", "ERR%", "P50", "P99", "FLAGS")


def format_ms(value: float | None) -> str:
    """`12ms`, `1.5s`, `2m3s`: a duration column cell."""
    if value is None:
        return "-"
    if value < 1000:
        return f"{value:g}ms"
    if value < 60_000:
        return f"{value / 1000:.3g}s"
    minutes, rest = divmod(int(value) // 1000, 60)
    return f"{minutes}m{rest}s"


class CellCache(dict):
    """A cell text per value (`format_ms` of a duration, the FLAGS cell of a flag tuple),
    computed on a miss; looking one up in C (`map(cache.__getitem__, values)`) is a fraction
    of a Python call per row. Emptied when it holds `limit` values, so its memory stays
    bounded however many distinct values a log has."""

    def __init__(self, render, limit: int = 4096):
        super().__init__()
        self.render = render
        self.limit = limit

    def __missing__(self, value):
        if len(self) >= self.limit:
            self.clear()
        text = self[value] = self.render(value)
        return text


def _flags_cell(flags: Sequence[str]) -> str:
    return ",".join(flags) or "-"


def request_columns(records: Sequence[AccessLogRecord], wide: bool = False,
                    caches: tuple[CellCache, CellCache] | None = None) -> list[list[str]]:
    """The table cells of these requests, column by column (TIME, POD, ... as the headers),
    control characters escaped (`output.printable`). Column-wise, the attribute reads and
    the checks run in C over a whole column: half the cost of row by row, at a million.
    `caches` (`request_cell_caches()`), kept from one call to the next, spare formatting a
    duration or a flag set seen before."""
    def text(name: str) -> list[str]:
        values = list(map(attrgetter(name), records))
        return list(map(_UNSET.get, values, values))  # `value or "-"` in C

    durations, flag_sets = caches or request_cell_caches()
    starts = list(map(attrgetter("start_time"), records))
    columns = [
        # HH:MM:SS.mmm, the wall clock of the logged time (time().isoformat is C and a
        # third of the datetime's isoformat with a keyword, at a million rows)
        list(map(_MILLISECONDS, map(datetime.time, starts))),
        text("pod"),
        list(map(str, map(attrgetter("response_code"), records))),
        list(map(flag_sets.__getitem__, map(attrgetter("response_flags"), records))),
        text("method"), text("authority"), text("path"),
        list(map(durations.__getitem__, map(attrgetter("duration"), records))),
        text("upstream_host"),
    ]
    if wide:
        columns += [text("response_code_details"), text("upstream_cluster"),
                    text("route_name"), text("request_id")]
    # one check per column; escaping is the rare case
    return [column if "".join(column).isprintable() else list(map(output.printable, column))
            for column in columns]


_UNSET = {None: "-", "": "-"}  # a text field's cell when it has no value; else the value
_MILLISECONDS = methodcaller("isoformat", "milliseconds")


def request_cell_caches() -> tuple[CellCache, CellCache]:
    """The caches `request_columns` takes: DURATION cells by duration, FLAGS by flag set."""
    return CellCache(format_ms), CellCache(_flags_cell)


def request_row(record: AccessLogRecord, wide: bool = False) -> list[str]:
    """The table cells of one request (`request_columns`): the follow-mode writer prints
    these without going through `output.render_table`."""
    return [column[0] for column in request_columns((record,), wide)]


def write_requests(out: IO[str], fmt: str, records: Iterable[AccessLogRecord],
                   show_legend: bool = False) -> None:
    """The request table (short: TIME POD CODE FLAGS METHOD AUTHORITY PATH DURATION UPSTREAM;
    wide adds DETAILS CLUSTER ROUTE REQUEST ID) or the records as data. With `show_legend`
    (tables only) the flags seen are explained below the table."""
    records = list(records)
    output.check_format(fmt)
    wide = fmt == "wide"
    headers = REQUEST_HEADERS + (REQUEST_WIDE_EXTRA if wide else ())
    if fmt in ("short", "wide"):
        output.write(out, fmt, headers=headers, rows=[list(row) for row in zip(*request_columns(records, wide))],
                     gap=3)
    else:
        output.write(out, fmt, data=[r.to_dict() for r in records])
    if show_legend and fmt in ("short", "wide"):
        write_legend(out, (r.response_flags for r in records))


def write_legend(out: IO[str], flag_sets: Iterable[Sequence[str]]) -> None:
    """`\\nFLAGS:\\n  UT – upstream request timeout: ...` for the flags present (nothing if none)."""
    lines = legend(flag_sets)
    if lines:
        out.write("\nFLAGS:\n" + "".join(f"  {line}\n" for line in lines))


def group_row(row: GroupRow) -> list[str]:
    flags = ",".join(f for f, _ in row.flags) or "-"
    return [row.label, str(row.count), str(row.errors), f"{100 * row.error_rate:.1f}",
            format_ms(row.p50_ms), format_ms(row.p99_ms), flags]


def write_groups(out: IO[str], fmt: str, by: str, rows: Sequence[GroupRow],
                 show_legend: bool = False) -> None:
    """The `--by` table (`UPSTREAM COUNT ERRORS ERR% P50 P99 FLAGS`; wide adds the raw key,
    e.g. the upstream address next to the pod name) or the groups as data."""
    output.check_format(fmt)
    wide = fmt == "wide"
    headers = (GROUP_LABELS[by],) + GROUP_HEADERS + (("KEY",) if wide else ())
    table = [group_row(r) + ([r.key] if wide else []) for r in rows]
    output.write(out, fmt, headers=headers, rows=table,
                 data={"by": by, "groups": [r.to_dict() for r in rows]}, gap=3)
    if show_legend and fmt in ("short", "wide"):
        write_legend(out, ([f for f, _ in r.flags] for r in rows))
