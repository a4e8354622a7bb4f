"""Which records to show: `--flags`, `--code`, `--slower-than`, `--host`, `--path`.

All given criteria must hold (AND); within `--flags` and `--code` any value matches (OR).
`--since` is not here: the caller passes it to the logs API (`sinceSeconds`/`sinceTime`).

- `--flags UT,UH`: the record carries at least one of them (short or long names, e.g.
  `UpstreamRequestTimeout`).
- `--code 5xx|504|4xx,503`: `,` or `|` separated; `Nxx` is a class, a number is exact; `0`
  (no response) is allowed.
- `--slower-than 500ms`: duration strictly greater (`ms`, `s`, `m`; a bare number is ms).
- `--host H`: the request's authority. With a glob character (`*?[`) it is a
  case-insensitive fnmatch on the whole authority (`*.svc.cluster.local`, `catalog:*`);
  without one, a case-insensitive substring (`catalog` matches `catalog.istioinaction:80`).
- `--path P`: the path starts with P (the query string is part of the path).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from typing import Iterable

from kubectl_mesh.accesslog.flags import normalize
from kubectl_mesh.accesslog.record import AccessLogRecord
from kubectl_mesh.errors import UsageError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_MS = {None: 1.0, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def parse_duration_ms(text: str) -> float:
    """`500ms` → 500, `1.5s` → 1500, `2m` → 120000, `250` → 250; UsageError otherwise."""
    m = _DURATION.match(text)
    if not m:
        raise UsageError(f"invalid duration {text!r}; use e.g. 500ms, 1.5s, 2m")
    return float(m.group(1)) * _UNIT_MS[m.group(2)]


@dataclasses.dataclass(frozen=True)
class CodeSpec:
    """Response codes to keep: exact codes and classes (5 for `5xx`)."""

    exact: frozenset[int] = frozenset()
    classes: frozenset[int] = frozenset()

    @classmethod
    def parse(cls, text: str) -> "CodeSpec":
        exact, classes = set(), set()
        for term in re.split(r"[,|]", text):
            term = term.strip().lower()
            if not term:
                continue
            if re.fullmatch(r"[1-5]xx", term):
                classes.add(int(term[0]))
            elif term.isdigit() and (term == "0" or 100 <= int(term) <= 599):
                exact.add(int(term))
            else:
                raise UsageError(f"invalid response code {term!r} in --code {text!r}; "
                                 "use e.g. 5xx, 504, 0 (no response) or 4xx,503")
        if not exact and not classes:
            raise UsageError(f"--code {text!r} names no response code")
        return cls(frozenset(exact), frozenset(classes))

    def matches(self, code: int) -> bool:
        return code in self.exact or (code // 100) in self.classes


@dataclasses.dataclass(frozen=True)
class RecordFilter:
    """The request filter; an empty filter keeps everything."""

    flags: frozenset[str] = frozenset()
    codes: CodeSpec | None = None
    slower_than_ms: float | None = None
    host: str | None = None
    path_prefix: str | None = None

    @classmethod
    def from_options(cls, *, flags: str | Iterable[str] | None = None, code: str | None = None,
                     slower_than: str | None = None, host: str | None = None,
                     path: str | None = None) -> "RecordFilter":
        """Build from the flag strings as the user typed them; UsageError on bad values."""
        if isinstance(flags, str):
            flags = flags.split(",")
        flag_set = frozenset(normalize(f) for f in (flags or ()) if f.strip())
        return cls(
            flags=flag_set,
            codes=CodeSpec.parse(code) if code else None,
            slower_than_ms=parse_duration_ms(slower_than) if slower_than else None,
            host=host.lower() if host else None,
            path_prefix=path or None,
        )

    @property
    def keeps_everything(self) -> bool:
        return self == RecordFilter()

    @property
    def host_is_glob(self) -> bool:
        return self.host is not None and any(c in self.host for c in "*?[")

    def matches(self, record: AccessLogRecord) -> bool:
        if self.flags and not any(normalize(f) in self.flags for f in record.response_flags):
            return False
        if self.codes is not None and not self.codes.matches(record.response_code):
            return False
        if self.slower_than_ms is not None and not record.duration > self.slower_than_ms:
            return False
        if self.host is not None:
            authority = (record.authority or "").lower()
            if self.host_is_glob:
                if not fnmatch.fnmatchcase(authority, self.host):
                    return False
            elif self.host not in authority:
                return False
        if self.path_prefix is not None and not (record.path or "").startswith(self.path_prefix):
            return False
        return True

    def apply(self, records: Iterable[AccessLogRecord]) -> Iterable[AccessLogRecord]:
        """Lazily keep the matching records (streaming)."""
        return (r for r in records if self.matches(r))
