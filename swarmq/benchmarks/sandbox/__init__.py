"""Run untrusted Python (model completions) in a limited subprocess and say honestly how it was isolated.

Layers, each used only where the machine allows it (probed once, cached): network, IPC and PID namespaces;
a mount namespace with private tmpfs over the world-writable dirs, /run and the cwd, and a fresh /proc; an
unprivileged uid unique to the run; rlimits; no_new_privs; a new session whose group (and every process of
the uid) is killed afterwards; a scrubbed environment; a fresh working directory. Every process starts as a
small launcher (``confine``) spawned by this process, which confines itself and then execs the program: the
scoring process, which may hold a model, is never forked. ``isolation`` in every result records
what was really applied. Stdlib only: it must import under any interpreter, a bare venv's included.

``run_checked`` is the scorer's entry: the program under test runs sandboxed as the *candidate*, the
dataset's ``check`` runs in a separate sandboxed *judge* that calls the candidate over pipes with plain data
only, and only the judge's report that its check returned earns "passed" (see ``run.run_checked``).
``run_python`` judges by exit status alone, which a script can fake (``os._exit(0)``), so it is for isolation
tests, not for scoring.

A caller can stop a run from outside: inside ``cancelling(signal)`` a run looks at the signal while it waits,
and a cancelled run is killed and raises `Cancelled`.

Modules, each importing only those listed before it: ``cancel`` (stopping a run from outside), ``limits``
(limits, result, status), ``harness`` (the judge's and the candidate's fixed programs and the plain-data wire
between them), ``verdict`` (exit status or the judge's report → status), ``confine`` (the launcher: what a
run's process applies to itself before it execs the program), ``namespaces`` (the probes, and the
launcher's command for one run), ``output`` (stdout and stderr read while a run goes, tails kept),
``launch`` (one script run: start, wait, kill, collect), ``checked`` (one checked run: judge and candidate
side by side), ``isolation`` (the machine's capabilities and interpreter, probed once: ``isolation._caps``),
``run`` (the entry points).
"""

from __future__ import annotations

from swarmq.benchmarks.sandbox.cancel import Cancelled, cancelling
from swarmq.benchmarks.sandbox.isolation import probe_isolation, python_candidates
from swarmq.benchmarks.sandbox.limits import SandboxLimits, SandboxResult, Status
from swarmq.benchmarks.sandbox.run import run_checked, run_python
from swarmq.benchmarks.sandbox.verdict import classify, verdict

__all__ = [
    "Cancelled",
    "SandboxLimits",
    "SandboxResult",
    "Status",
    "cancelling",
    "classify",
    "probe_isolation",
    "python_candidates",
    "run_checked",
    "run_python",
    "verdict",
]
