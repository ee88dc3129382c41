"""The two fixed programs of a checked run and the plain-data wire between them; stdlib only, since this
file's text runs (``-I -S -c``) in both sandboxed interpreters. The *judge* runs the dataset's trusted code
(the prompt's helpers and ``check``) and writes the verdict on a report pipe; the *candidate* runs the
program under test and answers calls of its entry point. ``check`` gets a stand-in that sends each call's
arguments to the candidate and returns its reply, decoded strictly: values cross as JSON of plain data only
(None, bool, int, float, complex, str, bytes, bytearray, list, tuple, dict, set, frozenset, range; an
iterator as a list iterator), so no object of the candidate's (an ``__eq__``, a float subclass) ever exists
in the judge. The candidate's side converts what it can (a subclass crosses as its base type's value).

The report: ``S`` (judge up), ``R`` (the candidate's harness up, before any of its code ran), then ``P``
(check returned), ``F`` (check raised, or the candidate broke the protocol), ``C`` (the candidate's process
ended) or ``E`` + why (cannot judge: the check does not load, the candidate's sandbox did not start).
"""

from __future__ import annotations

import builtins
import json
import os
import struct
import sys
import traceback
import types

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported in the sandbox: each run pays for every import
    from typing import Any, NoReturn

MAX_REPLY_BYTES = 64 << 20
"""The largest message the judge accepts from the candidate: more fails the run."""
_LENGTH = struct.Struct(">I")
_LISTS: dict[str, Any] = {"t": tuple, "s": set, "f": frozenset, "i": iter}
_TAG_OF: dict[Any, str] = {tuple: "t", set: "s", frozenset: "f"}
_HEX: dict[str, Any] = {"b": bytes.fromhex, "y": bytearray.fromhex}
_SCALARS = (type(None), bool, int, float, str)
_BASES: tuple[Any, ...] = (int, float, complex, str, bytes, bytearray, tuple, list, dict, frozenset, set)
_VALUE_OF: dict[Any, Any] = {int: int.__int__, float: float.__float__, str: str.__str__}


class Broken(BaseException):
    """The candidate broke the run (not a plain-data reply, its process gone): not an ``Exception``, so a
    check's ``except Exception`` cannot swallow it, and the verdict is already recorded as not passed."""


def plain(value: Any, convert: bool = False) -> Any:
    """``value`` as JSON-ready data; TypeError for anything that is not plain data. With ``convert`` (the
    candidate's side), a subclass of a plain type crosses as its base type's value (not its ``str()``, which
    for an Enum is its name) and an iterator as its items."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is list:
        return [plain(v, convert) for v in value]
    if kind is dict:
        return {"d": [[plain(k, convert), plain(v, convert)] for k, v in value.items()]}
    tag = _TAG_OF.get(kind)
    if tag:
        return {tag: [plain(v, convert) for v in value]}
    if kind is bytes or kind is bytearray:
        return {"b" if kind is bytes else "y": value.hex()}
    if kind is complex:
        return {"c": [value.real, value.imag]}
    if kind is range:
        return {"r": [value.start, value.stop, value.step]}
    if convert and isinstance(value, _BASES):
        base = next(b for b in _BASES if isinstance(value, b))
        as_base = _VALUE_OF.get(base, base)(value)
        if type(as_base) is base:
            return plain(as_base, convert)
    if convert and hasattr(kind, "__next__") and iter(value) is value:
        return {"i": [plain(v, convert) for v in value]}
    raise TypeError(f"a {kind.__name__} is not plain data")


def _tagged(obj: dict[str, Any]) -> Any:
    """json's object hook: every JSON object on the wire is one tagged value; anything else is refused."""
    if len(obj) == 1:
        ((tag, v),) = obj.items()
        if type(v) is list:
            if tag in _LISTS:
                return _LISTS[tag](v)
            if tag == "d" and all(type(p) is list and len(p) == 2 for p in v):
                return dict(v)
            if tag == "c" and len(v) == 2 and all(type(x) in (int, float) for x in v):
                return complex(v[0], v[1])
            if tag == "r" and len(v) == 3 and all(type(x) is int for x in v):
                return range(v[0], v[1], v[2])
        if tag in _HEX and type(v) is str:
            return _HEX[tag](v)
    raise ValueError("not a plain-data value")


def _digits(limit: int) -> int:
    """Set the int↔str digit limit (3.11+), so huge ints cross without changing what the programs see."""
    old: int = getattr(sys, "get_int_max_str_digits", lambda: 0)()
    getattr(sys, "set_int_max_str_digits", lambda n: None)(limit)
    return old


def send(fd: int, message: Any) -> None:
    """One message: its length, then its JSON (ASCII, so a lone surrogate crosses as an escape)."""
    old = _digits(0)
    try:
        data = json.dumps(message, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    finally:
        _digits(old)
    view = memoryview(_LENGTH.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


def _exactly(fd: int, n: int) -> bytes:
    chunks = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError("the pipe closed")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def receive(fd: int, limit: int = MAX_REPLY_BYTES) -> Any:
    """The next message; EOFError when the other side is gone, any other error for a malformed one."""
    (n,) = _LENGTH.unpack(_exactly(fd, _LENGTH.size))
    if n > limit:
        raise ValueError(f"a message of {n} bytes (at most {limit})")
    data, old = _exactly(fd, n), _digits(0)
    try:
        return json.loads(data, object_hook=_tagged)
    finally:
        _digits(old)


def _flush() -> None:
    # os._exit skips the interpreter's flush; output is the program's, so nothing it raises here counts.
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:  # noqa: SIM105 - contextlib would be one more import in every sandboxed process
            stream.flush()  # type: ignore[union-attr]
        except BaseException:
            pass


def _module(name: str, path: str) -> types.ModuleType:
    """Run ``path`` as module ``name`` (not "__main__": `if __name__ == "__main__":` blocks stay off)."""
    with open(path, "rb") as f:
        source = f.read()
    module = types.ModuleType(name)
    sys.modules[name] = module
    exec(compile(source, path, "exec"), module.__dict__)
    return module


def _reraise(names: Any, message: Any) -> None:
    """Raise the nearest built-in ``Exception`` type the candidate's exception descends from (so a check
    that expects one sees it); anything else (``SystemExit``, a malformed reply) is `Broken`."""
    for name in names if type(names) is list and type(message) is str else ():
        cls = getattr(builtins, name, None) if type(name) is str else None
        if isinstance(cls, type) and issubclass(cls, Exception):
            try:
                exc = cls(message)
            except Exception:
                continue
            raise exc
    raise Broken(f"the candidate raised {names!r}: {message!r}")


def _undumpable() -> None:
    """PR_SET_DUMPABLE 0: /proc/<pid>/mem, /proc/<pid>/fd and ptrace of this process need CAP_SYS_PTRACE."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(4, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


def judge(report: int, calls: int, replies: int, entry_point: str) -> None:
    """The trusted process: load check.py, start the candidate, run ``check`` and write the verdict."""
    write, exit_, print_exc, flush = os.write, os._exit, traceback.print_exc, _flush

    def end(code: bytes, why: str = "") -> NoReturn:
        if why and code != b"E":  # an E's why reaches the result through the report
            print(f"sandbox: {why}", file=sys.stderr)
        flush()
        write(report, code + why.encode("utf-8", "replace") if code == b"E" else code)
        exit_(0 if code == b"P" else 1)

    write(report, b"S")
    try:
        _undumpable()
        namespace = _module("__check__", "check.py").__dict__
        check = namespace["check"]
    except BaseException:
        print_exc()
        end(b"E", "the check did not load (the problem's prompt and test, run without the completion)")
    try:
        started = receive(replies) == ["started"]
    except BaseException:
        started = False
    if not started:
        end(b"E", "the candidate's sandbox did not start")
    write(report, b"R")  # before "go": the candidate's code cannot run before it
    try:
        send(calls, ["go"])
        loaded = receive(replies)
    except (EOFError, BrokenPipeError):
        end(b"C", "the candidate's process ended while its program loaded")
    except BaseException as exc:
        end(b"F", f"the candidate broke the protocol: {exc!r}")
    if loaded != ["loaded"]:
        end(b"F", "the program did not load (its traceback is above)")
    broken: list[tuple[bytes, str]] = []  # the first way the candidate broke the run decides the verdict
    sent: list[bool] = []

    def fail(code: bytes, why: str) -> NoReturn:
        broken.append((code, why[:500]))
        raise Broken(broken[0][1])

    def stand_in(*args: Any, **kwargs: Any) -> Any:
        if broken:
            raise Broken("the candidate already broke the run")
        try:
            message = ["call", plain(list(args), True), plain(kwargs, True)]
        except TypeError as exc:  # the dataset's doing, unless a reply came first and may have caused it
            fail(
                b"F" if sent else b"E",
                f"the check passes an argument that does not cross as plain data: {exc}",
            )
        sent.append(True)
        try:
            send(calls, message)
            reply = receive(replies)
        except (EOFError, BrokenPipeError):
            fail(b"C", "the candidate's process ended during a call")
        except BaseException as exc:
            fail(b"F", f"the candidate's reply is not plain data: {exc!r}")
        if type(reply) is list and len(reply) == 2 and reply[0] == "ok":
            return reply[1]
        if type(reply) is list and len(reply) == 3 and reply[0] == "raise":
            try:
                _reraise(reply[1], reply[2])
            except Broken as exc:
                fail(b"F", str(exc))
        bad = type(reply) is list and len(reply) == 2 and reply[0] == "bad"
        fail(b"F", f"the candidate returned {str(reply[1]) if bad else 'a malformed reply'}")

    stand_in.__name__ = stand_in.__qualname__ = entry_point
    namespace[entry_point] = stand_in  # a check that calls the function by its name calls the candidate
    try:
        check(stand_in)
    except BaseException:
        print_exc()
        end(*(broken[0] if broken else (b"F",)))
    end(*(broken[0] if broken else (b"P",)))


def serve(calls: int, replies: int, entry_point: str) -> None:
    """The candidate process: run main.py, then answer each call of ``entry_point`` until the pipe closes.
    Everything it uses is bound before the program runs, so the program cannot rebind it (only break it)."""
    reply_with, next_call, exit_, print_exc, flush = send, receive, os._exit, traceback.print_exc, _flush
    to_plain, type_, str_ = plain, type, str
    reply_with(replies, ["started"])
    try:
        next_call(calls)  # "go": the verdict's side is ready
        sys.argv[:] = ["main.py"]
        function = getattr(_module("__checked__", "main.py"), entry_point)
    except EOFError:
        exit_(0)
    except BaseException:
        print_exc()
        flush()
        reply_with(replies, ["load failed"])
        exit_(1)
    reply_with(replies, ["loaded"])
    while True:
        try:
            _, args, kwargs = next_call(calls, 1 << 62)
        except EOFError:
            flush()
            exit_(0)
        try:
            value = function(*args, **kwargs)
            try:
                reply = ["ok", to_plain(value, True)]
            except BaseException as exc:
                why = f"a value of type {type_(value).__name__!r}, which does not cross as plain data"
                reply = ["bad", f"{why} ({exc!r})"]
        except BaseException as exc:
            print_exc()
            try:
                reply = ["raise", [c.__name__ for c in type_(exc).__mro__], str_(exc)[:2000]]
            except BaseException:
                reply = ["raise", ["Exception"], "(an exception that cannot be described)"]
        flush()
        reply_with(replies, reply)


if __name__ == "__main__":  # python -I -S -c <this file> judge|serve FD... ENTRY_POINT
    main: Any = judge if sys.argv[1] == "judge" else serve
    main(*map(int, sys.argv[2:-1]), sys.argv[-1])
