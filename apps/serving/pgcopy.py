"""Decoding PostgreSQL's binary COPY of a few rows of big arrays into numpy (no Django, no per-row Python).

A window of prediction logs is read as a handful of rows of aggregated arrays (`array_agg` of each
column), not as a row per log: PostgreSQL's per-row cost in the protocol and psycopg's per-row cost
in Python are what made a million logs slow, not the bytes. An array of fixed-size elements without
NULLs is then one `np.frombuffer` away. Every length and header is checked; a surprise raises
`Unexpected` and the caller reads the window another way, so it never yields wrong numbers.
"""

import struct

import numpy as np

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
HEADER = len(SIGNATURE) + 8  # flags and header extension length, both int32
# PostgreSQL counts time from 2000-01-01 UTC, in microseconds.
POSTGRES_EPOCH_US = 946_684_800 * 1_000_000
# Element types of the arrays we read: PostgreSQL oid -> big-endian numpy type.
ELEMENTS = {20: ">i8", 21: ">i2", 701: ">f8", 16: "u1", 1184: ">i8"}
TIMESTAMPTZ = 1184


class Unexpected(ValueError):
    """The stream is not what the decoder reads."""


def rows(stream: bytes) -> list[list[memoryview | None]]:
    """The fields of each row of a binary COPY (None for NULL), as views into the stream."""
    view = memoryview(stream)
    if not stream.startswith(SIGNATURE) or len(stream) < HEADER + 2:
        raise Unexpected("not a binary COPY stream")
    if struct.unpack_from(">i", view, HEADER - 4)[0] != 0:
        raise Unexpected("a header extension")
    found, at = [], HEADER
    while True:
        (count,) = struct.unpack_from(">h", view, at)
        at += 2
        if count == -1:
            return found
        fields = []
        for _ in range(count):
            (length,) = struct.unpack_from(">i", view, at)
            at += 4
            if length == -1:
                fields.append(None)
            else:
                fields.append(view[at : at + length])
                at += length
        found.append(fields)


def array(field: memoryview) -> np.ndarray:
    """A PostgreSQL array (binary form) of fixed-size elements without NULLs, as a numpy array of its shape.

    Timestamps (timestamptz) come back as datetime64[us], booleans as bool, numbers as native types.
    """
    ndim, has_nulls, oid = struct.unpack_from(">iiI", field, 0)
    if oid not in ELEMENTS or has_nulls:
        raise Unexpected(f"an array of type {oid}{' with NULLs' if has_nulls else ''}")
    if ndim == 0:
        return np.empty(0, dtype=ELEMENTS[oid])
    dims = struct.unpack_from(f">{2 * ndim}i", field, 12)
    shape = dims[::2]
    size = np.dtype(ELEMENTS[oid]).itemsize
    elements = np.frombuffer(field[12 + 8 * ndim :], dtype=[("length", ">i4"), ("value", ELEMENTS[oid])])
    if len(elements) != int(np.prod(shape)) or not (elements["length"] == size).all():
        raise Unexpected("an array of elements of another size")
    values = elements["value"].reshape(shape)
    if oid == TIMESTAMPTZ:
        return (values.astype(np.int64) + POSTGRES_EPOCH_US).astype("datetime64[us]")
    if oid == 16:
        return values.astype(bool)
    return values.astype(values.dtype.newbyteorder("="))
