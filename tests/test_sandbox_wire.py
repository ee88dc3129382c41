"""The plain-data wire between the judge and the candidate: what crosses comes out as exactly the built-in
types that went in, and anything else is refused before it can reach the judge."""

from __future__ import annotations

import enum
import math
import os
import struct
import sys
from collections import Counter, OrderedDict, namedtuple
from collections.abc import Iterator
from typing import Any

import pytest

from swarmq.benchmarks.sandbox.harness import MAX_REPLY_BYTES, plain, receive, send


def cross(value: Any, convert: bool = False, limit: int = MAX_REPLY_BYTES) -> Any:
    read, write = os.pipe()
    try:
        send(write, plain(value, convert))
        return receive(read, limit)
    finally:
        os.close(read)
        os.close(write)


def shape(value: Any) -> Any:
    """A value with its exact type at every level, so == cannot hide a type change (1 == 1.0 == True)."""
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(map(repr, map(shape, value))) if isinstance(value, set | frozenset) else value
        return (type(value), [shape(v) for v in items] if items is value else items)
    if isinstance(value, dict):
        return (dict, sorted(repr((shape(k), shape(v))) for k, v in value.items()))
    return (type(value), repr(value) if isinstance(value, float | complex) else value)


VALUES = [
    None,
    True,
    0,
    -(10**5000),  # past the int↔str digit limit
    1.0,
    -0.0,
    float("inf"),
    1e-310,
    "",
    "h\u00e9llo \ud800",  # a lone surrogate
    b"\x00\xff",
    bytearray(b"ab"),
    3 - 4j,
    range(1, 10, 3),
    [1, [2.0, "x"], (3,)],
    (1, (2, [3]), ()),
    {"a": 1, 2: "b", (3, 4): [5], None: {True: False}, frozenset({1}): 0.5},
    {1, "a", (2, 3)},
    frozenset({frozenset({1})}),
    {"d": [["x", 1]]},  # a dict that looks like a tag crosses as a dict
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_plain_data_crosses_exactly(value: Any) -> None:
    assert shape(cross(value)) == shape(value)


def test_nan_crosses() -> None:
    assert math.isnan(cross(float("nan")))


def test_the_digit_limit_is_left_as_it_was() -> None:
    before = sys.get_int_max_str_digits()
    assert cross(10**9000) == 10**9000
    assert sys.get_int_max_str_digits() == before


class Int(int):
    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = int.__hash__


class Color(str, enum.Enum):  # noqa: UP042 - not StrEnum: its str() is "Color.RED", not the value
    RED = "red"


def generate() -> Iterator[int]:
    yield from (1, 2)


@pytest.mark.parametrize(
    ("value", "crossed"),
    [
        (Int(5), 5),
        (Color.RED, "red"),  # the value, not str() (which is "Color.RED")
        (Counter("aab"), {"a": 2, "b": 1}),
        (OrderedDict(x=1), {"x": 1}),
        (namedtuple("P", "x y")(1, 2), (1, 2)),
        ([Int(1), {Int(2): Color.RED}], [1, {2: "red"}]),
    ],
)
def test_the_candidates_side_crosses_a_subclass_as_its_base_value(value: Any, crossed: Any) -> None:
    with pytest.raises(TypeError, match="is not plain data"):
        plain(value)  # the judge's own values are never converted silently
    assert shape(cross(value, convert=True)) == shape(crossed)


def test_an_iterator_crosses_as_a_list_iterator() -> None:
    got = cross(generate(), convert=True)
    assert type(got) is type(iter([])) and tuple(got) == (1, 2)
    assert cross(map(str, [1]), convert=True) != ["1"]  # as in one process: an iterator is not a list


@pytest.mark.parametrize("value", [object(), len, {1: object()}, [type], {}.keys(), Exception("x")])
def test_other_objects_do_not_cross(value: Any) -> None:
    with pytest.raises(TypeError, match="is not plain data"):
        plain(value, convert=True)


def receive_raw(data: bytes, limit: int = MAX_REPLY_BYTES) -> Any:
    read, write = os.pipe()
    try:
        os.write(write, data)
        os.close(write)
        return receive(read, limit)
    finally:
        os.close(read)


@pytest.mark.parametrize(
    "message",
    [
        *(b"{}", b'{"x":1}', b'{"t":1}', b'{"t":[1],"s":[]}', b'{"d":[[1]]}', b'{"c":[1,"2"]}'),
        *(b'{"r":[1,2.0,1]}', b'{"b":"zz"}', b'{"s":[[1]]}', b'{"d":[[[1],2]]}', b"\xff", b"[1,"),
        b"[" * 30_000 + b"]" * 30_000,  # within the pipe's buffer: receive_raw writes before it reads
    ],
)
def test_malformed_messages_are_refused(message: bytes) -> None:
    with pytest.raises((ValueError, TypeError, RecursionError)):
        receive_raw(struct.pack(">I", len(message)) + message)


def test_a_message_over_the_limit_is_refused_unread() -> None:
    with pytest.raises(ValueError, match="a message of 100 bytes"):
        receive_raw(struct.pack(">I", 100), limit=99)


@pytest.mark.parametrize("data", [b"", b"\x00\x00", b"\x00\x00\x00\x05[1]"])
def test_a_closed_pipe_is_eof(data: bytes) -> None:
    with pytest.raises(EOFError):
        receive_raw(data)
