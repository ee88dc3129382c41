"""One exception hierarchy. Every message is a single line a user can act on."""

from __future__ import annotations

import re


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (driver errors span several), else its type's name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


_QUERY_PASSWORD = re.compile(r"(?i)([?&]password=)[^&#]*")


def mask_url(url: str) -> str:
    """A connection URL with its password replaced by ``***``: the one function every message, log line or
    printout that may show a URL goes through. It masks the ``user:password@`` part (up to the last ``@``
    before the query: a password may hold an unencoded ``/`` or ``@``) and a ``password=`` parameter (redis-py
    reads one), and works on text that is no valid URL too: a malformed URL is exactly what an error shows."""
    scheme, sep, rest = url.partition("://")
    if sep:
        before_query = rest.split("?", 1)[0].split("#", 1)[0]
        if "@" in before_query:
            at = before_query.rindex("@")
            user, colon, _password = rest[:at].partition(":")
            if colon:
                rest = f"{user}:***{rest[at:]}"
        url = f"{scheme}{sep}{rest}"
    return _QUERY_PASSWORD.sub(r"\1***", url)


REPLAY_DIFFERS = 7
"""Exit code of `swarmq replay` when the replayed text differs from the recorded one: a finding, not an
error."""


class SwarmqError(Exception):
    """Base of every error swarmq raises on purpose; the CLI prints it as one line and exits non-zero."""

    exit_code = 1


class ConfigError(SwarmqError):
    """The experiment file (or a setting) is wrong; the message names the file, field and line."""

    exit_code = 2


class DatasetError(SwarmqError):
    """The dataset cannot be loaded or a row is invalid; the message names the row."""

    exit_code = 2


class OutputError(SwarmqError):
    """An output path (`export -o`, `plot -o`) cannot be written: a folder where a file is wanted, a block
    device, a missing or read-only place. Nothing is left half-written."""

    exit_code = 2


class ServiceUnavailable(SwarmqError):
    """Postgres or Redis cannot be reached."""

    exit_code = 3


class SchemaOutOfDate(SwarmqError):
    """The database schema is not at the head migration; run `swarmq db upgrade`."""

    exit_code = 3


class UnknownExperiment(SwarmqError):
    """No experiment of that name exists."""

    exit_code = 4


class UnknownSelection(SwarmqError):
    """A ``--condition`` or ``--replicate`` the experiment does not have: refused like an unknown experiment,
    never answered with zero rows."""

    exit_code = 4


class ExperimentConflict(SwarmqError):
    """An experiment of that name exists with a different configuration."""

    exit_code = 4


class ExperimentStateError(SwarmqError):
    """The experiment's lifecycle forbids the command: it is cancelled, or it has running jobs that a delete
    would orphan (`queue.lifecycle`)."""

    exit_code = 4


class NameInUse(SwarmqError):
    """A worker ``--name`` another live process holds: a name clash, as for experiments."""

    exit_code = 4


class ModelError(SwarmqError):
    """The model file is missing, not a GGUF, or cannot be loaded on the requested device."""

    exit_code = 5


class GenerationError(SwarmqError):
    """Generation failed for a reason that retrying will not fix (e.g. prompt longer than n_ctx)."""


class GenerationTimedOut(GenerationError):
    """Generation ran past its deadline (`generation.timeout_seconds`) and was stopped."""


class GenerationCancelled(GenerationError):
    """The job's runner asked the generation to stop (`GenerationRequest.cancel` was set): the job ran past
    a deadline, lost its lease, or the worker is shutting down. The message is the runner's reason."""


class ScorerUnavailable(SwarmqError):
    """A benchmark's scorer cannot run on this machine (its start-up self-test failed): a worker refuses to
    start rather than record every outcome as a scoring error."""

    exit_code = 6
