"""The protobuf wire format, as much of it as the xDS debug messages need.

A message is a sequence of fields `(field number << 3 | wire type)` + payload; wire types used
by the messages here: 0 varint, 1 fixed64, 2 length-delimited (strings, bytes, embedded
messages, packed repeated), 5 fixed32. Unknown fields are skipped, as every protobuf decoder
does, so newer servers with more fields still decode.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5


class DecodeError(ValueError):
    """Bytes that are not the protobuf message they should be."""


def varint(value: int) -> bytes:
    """`value` as a base-128 varint (negative int64s as their two's complement, 10 bytes)."""
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """(value, next position) of the varint at `pos`."""
    result = shift = 0
    while True:
        if pos >= len(data):
            raise DecodeError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise DecodeError("varint longer than 10 bytes")


def field_bytes(number: int, payload: bytes) -> bytes:
    """A length-delimited field (string, bytes or embedded message)."""
    return varint(number << 3 | LENGTH) + varint(len(payload)) + payload


def field_string(number: int, text: str) -> bytes:
    """A string field; the empty string is left out, as proto3 leaves out defaults."""
    return field_bytes(number, text.encode()) if text else b""


def field_varint(number: int, value: int) -> bytes:
    return varint(number << 3 | VARINT) + varint(value) if value else b""


def fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) for each field of a message: ints for varint and
    fixed types, bytes for length-delimited ones."""
    pos = 0
    end = len(data)
    while pos < end:
        key, pos = read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise DecodeError("field number 0")
        if wire == VARINT:
            value, pos = read_varint(data, pos)
        elif wire == LENGTH:
            size, pos = read_varint(data, pos)
            if pos + size > end:
                raise DecodeError(f"field {number} runs past the end of the message")
            value = bytes(data[pos:pos + size])
            pos += size
        elif wire == FIXED64:
            if pos + 8 > end:
                raise DecodeError("truncated fixed64")
            value = struct.unpack_from("<Q", data, pos)[0]
            pos += 8
        elif wire == FIXED32:
            if pos + 4 > end:
                raise DecodeError("truncated fixed32")
            value = struct.unpack_from("<I", data, pos)[0]
            pos += 4
        else:  # groups (3, 4) are proto2-only and not in any message decoded here
            raise DecodeError(f"unsupported wire type {wire} (field {number})")
        yield number, wire, value


def signed64(value: int) -> int:
    """A varint read back as int64 (negative values are sent as 10-byte varints)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def text(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise DecodeError("a string field with a numeric wire type")
    try:
        return value.decode()
    except UnicodeDecodeError as e:
        raise DecodeError("a string field that is not UTF-8") from e
