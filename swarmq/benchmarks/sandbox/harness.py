"""The fixed program that runs a checked completion: it calls ``check(entry_point)`` itself and proves that
the call returned by writing a nonce it was piped (see ``run.run_checked``)."""

from __future__ import annotations

_NONCE_CHARS = 32

_HARNESS = """\
import os, sys, traceback, types
def _flush():
    # os._exit skips the interpreter's flush; output is the program's, so nothing it raises here counts.
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except BaseException:
            pass
def _run(nonce_fd, report_fd, entry_point):
    # Bound before the program runs, so rebinding os.write, os._exit or _flush cannot change what this does.
    write, exit_, print_exc, flush = os.write, os._exit, traceback.print_exc, _flush
    nonce = b""
    while len(nonce) < NONCE_CHARS:
        chunk = os.read(nonce_fd, NONCE_CHARS - len(nonce))
        if not chunk:
            break
        nonce += chunk
    os.close(nonce_fd)
    with open("main.py", "rb") as f:
        source = f.read()
    module = types.ModuleType("__checked__")  # not "__main__": `if __name__ == "__main__":` blocks stay off
    sys.modules[module.__name__] = module
    sys.argv[:] = ["main.py"]
    write(report_fd, b"S")
    try:
        exec(compile(source, "main.py", "exec"), module.__dict__)
        module.__dict__["check"](module.__dict__[entry_point])
    except BaseException:
        try:
            print_exc()
        finally:
            flush()
            exit_(1)
    flush()
    write(report_fd, nonce)
    exit_(0)
_run(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
""".replace("NONCE_CHARS", str(_NONCE_CHARS))
"""Run with ``-I -S -c``; its only secret, the nonce, is a local of ``_run`` and its pipe is closed first."""
