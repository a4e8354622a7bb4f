"""Access-log records as the items of the JSON list `-o json` writes, a batch at a time.

`output.json_value(record.to_dict(), "\\n  ")` – a dict and ~30 Python calls per record –
cost more than parsing the record. Here a whole batch is one `%` format of the item text
repeated once per record, its arguments the records' values in one flat list (their
`__dict__`s' values, chained in C): strings go between the template's quotes as they are
when none in the batch needs escaping (the common case: one check over them all joined),
otherwise each value is encoded by json's C encoder first; a text field unset in the whole
batch has a slot that writes null. The text is byte for byte what
`output.write_json` writes for `[r.to_dict() for r in records]` (tests/accesslog).
"""

from __future__ import annotations

import itertools
import json
import operator
from datetime import date, datetime
from operator import methodcaller
from typing import Callable, Iterable

from kubectl_mesh import output
from kubectl_mesh.accesslog.record import FIELDS, AccessLogRecord
from kubectl_mesh.accesslog.render import CellCache

SEPARATOR = ",\n  "  # after every item (the last one's is dropped when it is written)

# a record's values as its __dict__ holds them: FIELDS in order, then the pod name
# (record.build; tests/accesslog/test_parser.py checks every parser path keeps that order)
_KEYS = (*FIELDS, "pod")
_WIDTH = len(_KEYS)
_POD = _WIDTH - 1
_TIME, _FLAGS = FIELDS.index("start_time"), FIELDS.index("response_flags")
_INTS = tuple(FIELDS.index(n) for n in ("response_code", "bytes_received", "bytes_sent",
                                        "duration"))
_SERVICE_TIME = FIELDS.index("upstream_service_time")  # an integer or None
_TEXTS = tuple(i for i in range(len(FIELDS))
               if i not in (_TIME, _FLAGS, _SERVICE_TIME, *_INTS))
# A text's None in the plain template: its slot '"%s"' becomes '""""', which nothing else
# writes (a value holds no quote there) and which is as long as the `null` it becomes.
_UNSET = {None: '""'}
_NULL = {None: "null"}
_NO_TEXT = {None: ""}
_NONE_TYPE = type(None)
_encode_string = json.encoder.encode_basestring
# format_time's `isoformat(timespec="milliseconds")[:23] + "Z"`: the date and the time of
# day as logged (the offset dropped); as two cheaper calls, the date's text cached
_TIME_SLOT = '"%sZ"'
_TIME_OF_DAY = methodcaller("isoformat", "milliseconds")
_DATE_AND_TIME = "{}T{}".format


def _item_template(shape: tuple[bool, ...] | None) -> str:
    """A record's dict as `json_value(to_dict(), "\\n  ")` writes it, each value a `%s`
    (the time its date and time of day). With a `shape` (one entry per text field: all None in
    the batch), the texts go between quotes (their values need no escaping), or the slot
    writes null and drops its None (`%.0s`)."""
    slots = ["%s"] * len(FIELDS)
    slots[_TIME] = _TIME_SLOT
    if shape is not None:
        for i, unset in zip(_TEXTS, shape):
            slots[i] = "null%.0s" if unset else '"%s"'
    return "{\n    " + ",\n    ".join(f"{_encode_string(name)}: {slot}"
                                      for name, slot in zip(FIELDS, slots)) + "\n  }" \
        + SEPARATOR + "%.0s"  # the pod slot: None (checked), not written


class JsonItems:
    """Renders batches of records as JSON list items. The records are a file's: no pod
    names (`to_dict` would start with one), their integer fields integers (the parser's
    `int()`) and their text fields strings or None."""

    def __init__(self, encoded_size: Callable[[str], int]):
        self.encoded_size = encoded_size  # a text's size in bytes, as it will be written
        self.dates = CellCache(date.isoformat)
        self.flag_lists = CellCache(lambda flags: output.json_value(list(flags), "\n    "))
        self.encode = json.JSONEncoder(ensure_ascii=False, check_circular=False,
                                       separators=("\x1f", ":")).encode
        # by shape and number of records: the batch's template, an item's size without
        # its values'
        self.templates: dict[tuple, tuple[str, int]] = {}

    def __call__(self, batch: list[AccessLogRecord]) -> tuple[str, Iterable[int]]:
        """The batch's items one after the other, each followed by SEPARATOR, and their
        sizes in bytes."""
        if tuple(vars(batch[0])) != _KEYS:
            return self._each(batch)
        values = self._flat(batch)
        if values[_POD::_WIDTH].count(None) != len(batch):
            return self._each(batch)
        plain = self._plain(values, len(batch))
        if plain is None:
            values, shape, mixed = self._encoded(batch), None, False
        else:
            values, shape, mixed = plain
        template, fixed = self._template(shape, len(batch))
        text = template % tuple(values)
        if mixed:
            text = text.replace('""""', "null")  # as long: the sizes stay right
        sizes = map(operator.length_hint, values) if text.isascii() else \
            map(self.encoded_size, map(_NO_TEXT.get, values, values))  # None: 0
        return text, map(fixed.__add__, map(sum, zip(*[sizes] * _WIDTH)))

    def _each(self, batch: list[AccessLogRecord]) -> tuple[str, Iterable[int]]:
        """Record by record through `to_dict` (not a file's records: kept correct, not fast)."""
        items = [output.json_value(r.to_dict(), "\n  ") + SEPARATOR for r in batch]
        return "".join(items), map(self.encoded_size, items)

    def _flat(self, batch: list[AccessLogRecord]) -> list:
        """The records' values one after the other (`_KEYS`), the times as the text of
        their date and time of day."""
        values = list(itertools.chain.from_iterable(map(dict.values, map(vars, batch))))
        times = values[_TIME::_WIDTH]
        values[_TIME::_WIDTH] = list(map(_DATE_AND_TIME,
                                         map(self.dates.__getitem__, map(datetime.date, times)),
                                         map(_TIME_OF_DAY, map(datetime.time, times))))
        return values

    def _plain(self, values: list, count: int):
        """The values for a plain template (strings, or None where a text field is unset
        in the whole batch), its shape, and whether the None of a text field set in some
        records is written as two quotes (their four then replaced by null); None when a
        text needs escaping (or is not printable) or a service time is not an integer or
        None."""
        service = values[_SERVICE_TIME::_WIDTH]
        if not set(map(type, service)) <= {int, _NONE_TYPE}:
            return None  # a bool, from a JSON log: json writes it as true/false
        values[_SERVICE_TIME::_WIDTH] = list(map(_NULL.get, service, map(str, service)))
        for i in _INTS:
            values[i::_WIDTH] = list(map(str, values[i::_WIDTH]))
        flags = values[_FLAGS::_WIDTH]
        values[_FLAGS::_WIDTH] = [""] * count  # their text has quotes of its own
        values[_POD::_WIDTH] = [""] * count
        unset = [values[i::_WIDTH].count(None) for i in _TEXTS]
        mixed = any(0 < n < count for n in unset)
        if mixed:
            values = list(map(_UNSET.get, values, values))
        try:
            joined = "".join(values if mixed else filter(None, values))
        except TypeError:
            return None
        if not joined.isprintable() or "\\" in joined or \
                joined.count('"') != (2 * sum(unset) if mixed else 0):
            return None
        values[_FLAGS::_WIDTH] = list(map(self.flag_lists.__getitem__, flags))
        shape = (False,) * len(_TEXTS) if mixed else tuple(n == count for n in unset)
        return values, shape, mixed

    def _encoded(self, batch: list[AccessLogRecord]) -> list[str]:
        """Every value as its JSON text (json's C encoder); the flags their list's."""
        values = self._flat(batch)
        for i in range(_WIDTH):
            if i == _FLAGS:
                values[i::_WIDTH] = list(map(self.flag_lists.__getitem__, values[i::_WIDTH]))
            elif i not in (_TIME, _POD):
                values[i::_WIDTH] = self.encode(values[i::_WIDTH])[1:-1].split("\x1f")
            elif i == _POD:
                values[i::_WIDTH] = [""] * len(batch)
        return values

    def _template(self, shape: tuple[bool, ...] | None, count: int) -> tuple[str, int]:
        key = (shape, count)
        found = self.templates.get(key)
        if found is None:
            if len(self.templates) > 8:  # a few shapes of full batches, and the last one
                self.templates.clear()
            item = _item_template(shape)
            found = self.templates[key] = (item * count, len(item % (("",) * _WIDTH)))
        return found
