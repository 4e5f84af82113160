"""The binary COPY decoder: arrays of fixed-size elements into numpy, and a refusal for anything else."""

import struct

import numpy as np
import pytest

from apps.serving import pgcopy


def array_bytes(
    oid: int, fmt: str, shape: tuple[int, ...], values: list, *, null_at: int | None = None
) -> bytes:
    size = struct.calcsize(">" + fmt)
    head = struct.pack(">iiI", len(shape), int(null_at is not None), oid)
    head += b"".join(struct.pack(">ii", dim, 1) for dim in shape)
    body = b"".join(
        struct.pack(">i", -1) if index == null_at else struct.pack(">i" + fmt, size, value)
        for index, value in enumerate(values)
    )
    return head + body


def stream(*rows: list[bytes | None]) -> bytes:
    out = pgcopy.SIGNATURE + struct.pack(">ii", 0, 0)
    for fields in rows:
        out += struct.pack(">h", len(fields))
        for field in fields:
            out += struct.pack(">i", -1) if field is None else struct.pack(">i", len(field)) + field
    return out + struct.pack(">h", -1)


def test_rows_and_arrays_are_decoded():
    matrix = array_bytes(701, "d", (2, 3), [1.0, 2.0, 3.0, 4.0, float("nan"), 6.0])
    ids = array_bytes(20, "q", (2,), [7, 9])
    moments = array_bytes(1184, "q", (1,), [0])
    flags = array_bytes(16, "?", (2,), [True, False])
    (row,) = pgcopy.rows(stream([matrix, ids, moments, flags, None]))
    decoded = pgcopy.array(row[0])
    assert decoded.shape == (2, 3)
    np.testing.assert_array_equal(decoded[0], [1.0, 2.0, 3.0])
    assert np.isnan(decoded[1, 1])
    assert pgcopy.array(row[1]).tolist() == [7, 9]
    assert pgcopy.array(row[2])[0] == np.datetime64("2000-01-01T00:00:00")
    assert pgcopy.array(row[3]).tolist() == [True, False]
    assert row[4] is None


def test_an_array_with_nulls_or_of_another_type_is_refused():
    with pytest.raises(pgcopy.Unexpected, match="NULL"):
        pgcopy.array(memoryview(array_bytes(701, "d", (2,), [1.0, 2.0], null_at=1)))
    with pytest.raises(pgcopy.Unexpected, match="type 25"):
        pgcopy.array(memoryview(array_bytes(25, "d", (1,), [1.0])))
    with pytest.raises(pgcopy.Unexpected, match="not a binary COPY"):
        pgcopy.rows(b"id\tscore\n")
