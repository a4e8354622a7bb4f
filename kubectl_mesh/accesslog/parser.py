"""Parse istio-proxy container logs into AccessLogRecords: Istio's default TEXT format and
its JSON encoding, mixed with Envoy's and pilot-agent's own log lines (skipped), optionally
prefixed by a Kubernetes timestamp (`kubectl logs --timestamps`, CRI log files).

A line never raises: each one is counted in `ParseStats` as a record, a skipped line (not an
access-log entry) or a malformed one (an access-log entry that could not be read, e.g. cut
short), so `--strict` can report what was lost.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from datetime import datetime
from typing import Any, Iterable, Iterator

from kubectl_mesh.accesslog.record import FIELDS, AccessLogRecord, build

# Istio's default TEXT format (docs: envoy.md). Envoy writes `-` for an unset value; the
# `(?:-|(?P<x>...))` alternatives let the regex turn `-` into None for free (a value that
# merely starts with `-` fails the following separator and backtracks into the group).
# Quoted values may contain spaces (user agents, TLS failure reasons) and quotes. A value
# ends at the first quote followed by what the format has next (` "` before another quoted
# value, ` 123` before a number, ` token ` before the cluster), so it can end in one place
# only and a line that does not match fails in linear time (with `.*?` a 1 KB line that
# almost matched took a second, 2 KB a minute: the lazy groups backtracked into each other).
def _value(follows: str) -> str:
    return r'(?:[^"]|"(?!' + follows + r'))*'


def _quoted(name: str, follows: str) -> str:
    return r'"(?:-|(?P<' + name + r'>' + _value(follows) + r'))"'


_U = r"(?:-|(?P<{}>\S+))"
TEXT_FORMAT = re.compile(
    r"\[(?P<start_time>[^\]]+)\] "
    r'"' + _U.format("method") + r" (?:-|(?P<path>" + _value(" ") + r"?)) "
    + _U.format("protocol") + r'" '
    r"(?P<response_code>\d+) " + _U.format("response_flags") + " "
    + _U.format("response_code_details") + " " + _U.format("connection_termination_details")
    + " " + _quoted("upstream_transport_failure_reason", r" \d") + " "
    r"(?P<bytes_received>\d+) (?P<bytes_sent>\d+) (?P<duration>\d+) "
    + _U.format("upstream_service_time") + " "
    + " ".join(_quoted(f, ' "') for f in ("x_forwarded_for", "user_agent", "request_id",
                                          "authority")) + " "
    + _quoted("upstream_host", r' [^" ]+ ') + " "
    + " ".join(_U.format(f) for f in ("upstream_cluster", "upstream_local_address",
                                      "downstream_local_address", "downstream_remote_address",
                                      "requested_server_name", "route_name"))
    + r"\s*$")

_INT_FIELDS = ("response_code", "bytes_received", "bytes_sent", "duration")
_MAX_EXAMPLES = 5


@dataclasses.dataclass
class ParseStats:
    """Counts for one parse: every line is exactly one of records/skipped/malformed."""

    records: int = 0
    skipped: int = 0  # Envoy/pilot-agent log lines, blank lines, other output
    malformed: int = 0  # looked like an access-log entry but could not be read
    malformed_examples: list[tuple[int, str]] = dataclasses.field(default_factory=list)

    @property
    def lines(self) -> int:
        return self.records + self.skipped + self.malformed

    def note_malformed(self, number: int, line: str) -> None:
        """Count a malformed line; keep the first few (line number, text) for `--strict` to
        show on stderr, control characters escaped (`output.printable`)."""
        self.malformed += 1
        if len(self.malformed_examples) < _MAX_EXAMPLES:
            from kubectl_mesh.output import printable
            self.malformed_examples.append((number, printable(line.rstrip("\r\n")[:200])))

    def to_dict(self) -> dict[str, Any]:
        return {"lines": self.lines, "records": self.records, "skipped": self.skipped,
                "malformed": self.malformed,
                "malformed_examples": [{"line": n, "text": t} for n, t in self.malformed_examples]}


def parse_time(text: str) -> datetime:
    """Envoy's START_TIME (`2026-11-26T03:22:27.520Z`) as an aware UTC datetime."""
    if text[-1:] == "Z":  # fromisoformat only takes `Z` from Python 3.11
        text = text[:-1] + "+00:00"
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"no time zone in {text!r}")
    return value


def _optional_int(value: Any) -> int | None:
    """`x-envoy-upstream-service-time` comes from a header: tolerate junk as unknown."""
    if value is None or value == "-":
        return None
    if isinstance(value, int):
        return value
    text = str(value)
    return int(text) if text.isdigit() else None


def _flags(value: Any) -> tuple[str, ...]:
    if not value or value == "-":
        return ()
    return tuple(value.split(","))


def parse_text(line: str, pod: str | None = None) -> AccessLogRecord | None:
    """One TEXT-format line (no prefix) → record; None if it is not one.

    Fast path: split on the 14 quotes of the format and on spaces (C-speed str methods, one
    dict literal); any surprise – a quote inside a value, a space in a path, a non-number –
    falls back to the regex, which handles those."""
    p = line.split('"')
    if len(p) == 15 and p[6] == p[8] == p[10] == p[12] == " " and p[0][-2:] == "] ":
        req = p[1].split(" ")
        mid = p[2].split()
        nums = p[4].split()
        tail = p[14].split()
        if len(req) == 3 and len(mid) == 4 and len(nums) == 4 and len(tail) == 6:
            try:
                start = p[0][1:-2]
                ust = nums[3]
                flags = mid[1]
                d = {
                    # `Z` needs Python 3.11; before, this raises and the regex path copes.
                    "start_time": datetime.fromisoformat(start),
                    "method": None if req[0] == "-" else req[0],
                    "path": None if req[1] == "-" else req[1],
                    "protocol": None if req[2] == "-" else req[2],
                    "response_code": int(mid[0]),
                    "response_flags": () if flags == "-" else tuple(flags.split(",")),
                    "response_code_details": None if mid[2] == "-" else mid[2],
                    "connection_termination_details": None if mid[3] == "-" else mid[3],
                    "upstream_transport_failure_reason": None if p[3] == "-" else p[3],
                    "bytes_received": int(nums[0]),
                    "bytes_sent": int(nums[1]),
                    "duration": int(nums[2]),
                    "upstream_service_time": int(ust) if ust.isdigit() else None,
                    "x_forwarded_for": None if p[5] == "-" else p[5],
                    "user_agent": None if p[7] == "-" else p[7],
                    "request_id": None if p[9] == "-" else p[9],
                    "authority": None if p[11] == "-" else p[11],
                    "upstream_host": None if p[13] == "-" else p[13],
                    "upstream_cluster": None if tail[0] == "-" else tail[0],
                    "upstream_local_address": None if tail[1] == "-" else tail[1],
                    "downstream_local_address": None if tail[2] == "-" else tail[2],
                    "downstream_remote_address": None if tail[3] == "-" else tail[3],
                    "requested_server_name": None if tail[4] == "-" else tail[4],
                    "route_name": None if tail[5] == "-" else tail[5],
                    "pod": pod,
                }
            except ValueError:
                pass
            else:
                if d["start_time"].tzinfo is not None and p[0][0] == "[":
                    return build(d)
    return _parse_text_regex(line, pod)


def _parse_text_regex(line: str, pod: str | None) -> AccessLogRecord | None:
    m = TEXT_FORMAT.match(line)
    if m is None:
        return None
    d = m.groupdict()
    try:
        d["start_time"] = parse_time(d["start_time"])
    except ValueError:
        return None
    for name in _INT_FIELDS:
        d[name] = int(d[name])
    d["upstream_service_time"] = _optional_int(d["upstream_service_time"])
    d["response_flags"] = _flags(d["response_flags"])
    d["pod"] = pod
    return build(d)


def parse_json(obj: dict, pod: str | None = None) -> AccessLogRecord | None:
    """One decoded JSON access-log object → record; None if a required field is unusable."""
    d: dict[str, Any] = {}
    for name in FIELDS:
        value = obj.get(name)
        d[name] = None if value == "-" or value == "" else value
    try:
        d["start_time"] = parse_time(str(d["start_time"]))
        for name in _INT_FIELDS:
            d[name] = int(d[name] or 0)
    except (ValueError, TypeError, IndexError):
        return None
    d["upstream_service_time"] = _optional_int(d["upstream_service_time"])
    d["response_flags"] = _flags(d["response_flags"])
    for name in FIELDS:  # everything else is text; JSON may carry numbers (route names...)
        value = d[name]
        if value is not None and name not in _TYPED and not isinstance(value, str):
            d[name] = str(value)
    d["pod"] = pod
    return build(d)


_TYPED = frozenset(_INT_FIELDS) | {"start_time", "upstream_service_time", "response_flags"}


def strip_kube_prefix(line: str) -> str | None:
    """Remove a `kubectl logs --timestamps` / CRI prefix (`<RFC3339Nano> [stdout F ]`);
    None if the line does not start with one. An Istio log line starts with a timestamp too,
    but a TAB follows it, not a space."""
    space = line.find(" ")
    if space < 20 or line[space - 1] != "Z" or line[4] != "-" or line[10] != "T":
        return None
    tab = line.find("\t", 0, space)
    if tab >= 0:
        return None
    rest = line[space + 1:]
    # CRI file format: `<time> <stream> <P|F> <text>`; a partial (P) line stays as it is.
    if rest[:7] in ("stdout ", "stderr ") and rest[8:9] == " " and rest[7] in "FP":
        rest = rest[9:]
    return rest


def parse_lines(lines: Iterable[str] | Iterable[bytes], stats: ParseStats | None = None,
                pod: str | None = None) -> Iterator[AccessLogRecord]:
    """Stream records from log lines (any iterable of str or bytes: a file, a response's
    iter_lines...); constant memory. `stats` (if given) is updated as lines are consumed;
    `pod` is set on every record."""
    if stats is None:
        stats = ParseStats()
    lines = iter(lines)
    first_line = next(lines, None)
    if first_line is None:
        return
    lines = itertools.chain((first_line,), lines)
    if isinstance(first_line, bytes):
        lines = (b.decode("utf-8", "replace") for b in lines)
    # Hot loop: one counter per line (`lines` is their sum), no rstrip – the TEXT fast path,
    # json.loads and the regex all tolerate the trailing newline.
    for number, line in enumerate(lines, 1):
        first = line[:1]
        if first != "[" and first != "{":
            stripped = strip_kube_prefix(line) if first.isdigit() else None
            if stripped is None:
                stats.skipped += 1  # `2026-...Z\twarning\tenvoy config ...`, blank, other
                continue
            line = stripped
            first = line[:1]
        if first == "[":
            record = parse_text(line, pod)
            if record is not None:
                stats.records += 1
                yield record
            elif _is_envoy_log(line):
                stats.skipped += 1
            else:
                stats.note_malformed(number, line)
        elif first == "{":
            try:
                obj = json.loads(line)
            except ValueError:
                stats.note_malformed(number, line)  # most often a line cut short
                continue
            if not isinstance(obj, dict) or not _looks_like_access_log(obj):
                stats.skipped += 1  # structured pilot-agent log line, for instance
                continue
            record = parse_json(obj, pod)
            if record is None:
                stats.note_malformed(number, line)
            else:
                stats.records += 1
                yield record
        else:
            stats.skipped += 1


def _is_envoy_log(line: str) -> bool:
    """Envoy's own default log format: `[2026-11-26 03:22:27.520][12][warning][config] ...`."""
    close = line.find("]")
    return close > 0 and line[close + 1:close + 2] == "["


def _looks_like_access_log(obj: dict) -> bool:
    return "start_time" in obj and ("response_code" in obj or "duration" in obj)
