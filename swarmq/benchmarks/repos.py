"""Local clones of SWE-bench repositories, and the one question asked of them: does a patch apply at a commit?

Layout of the repositories directory (``SWARMQ_REPOS_DIR``)::

    <repos_dir>/django__django/          a bare (or normal) git clone of github.com/django/django
    <repos_dir>/.django__django.lock     serialises the first clone between workers
    <repos_dir>/.django__django.partial  a clone under way; renamed into place only when complete

A check reads the commit's tree into a temporary index and runs ``git apply --check --cached`` against it:
nothing is checked out, the clone is only read, so checks are fast and any number may run at once.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from swarmq.benchmarks.diff import strip_level
from swarmq.errors import first_line

log = logging.getLogger(__name__)

GITHUB = "https://github.com/{repo}.git"
"""Where a missing repository is cloned from; ``{repo}`` is ``owner/name``, ``{owner}`` and ``{name}`` its
parts."""

_REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_COMMIT = re.compile(r"[0-9a-fA-F]{4,64}")


class Git(Protocol):
    """Runs ``git <args>``; injected so tests can count or fail calls."""

    def __call__(
        self,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdin: str | None = None,
        timeout: float,
    ) -> subprocess.CompletedProcess[str]: ...


def run_git(
    args: Sequence[str], *, env: Mapping[str, str] | None = None, stdin: str | None = None, timeout: float
) -> subprocess.CompletedProcess[str]:
    """git without the caller's GIT_* variables (a hook's GIT_DIR would redirect every call) and without
    credential prompts (GitHub answers a missing repository with one, which would hang a worker)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    clean.update(GIT_TERMINAL_PROMPT="0", **(env or {}))
    return subprocess.run(
        ["git", *args], input=stdin, capture_output=True, text=True, env=clean, timeout=timeout, check=False
    )


def repo_dirname(repo: str) -> str:
    """``django/django`` → ``django__django``: one flat directory per repository."""
    if not _REPO.fullmatch(repo) or any(part in (".", "..") for part in repo.split("/")):
        raise ValueError(f"repository {repo!r} is not of the form owner/name")
    return repo.replace("/", "__")


def git_error(stderr: str) -> str:
    """The line of git's output that says what went wrong (its first ``error:``/``fatal:`` line),
    unprefixed."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for ln in lines:
        for prefix in ("error: ", "fatal: "):
            if ln.startswith(prefix):
                return ln[len(prefix) :]
    return lines[0] if lines else "git failed without a message"


@dataclass(frozen=True)
class ApplyCheck:
    applies: bool | None
    """None: could not be judged (repository or commit missing, git failed); ``reason`` says why."""
    reason: str


class _Unavailable(Exception):
    """The repository cannot be had; the message is the one-line reason."""


class Repos:
    """The clones under ``base``; clones a missing one on first use (one worker at a time, under a file
    lock)."""

    def __init__(
        self,
        base: Path,
        *,
        git: Git = run_git,
        url_template: str = GITHUB,
        clone_seconds: float = 3600.0,
        check_seconds: float = 60.0,
        retry_seconds: float = 600.0,
    ) -> None:
        self.base = base
        self._git = git
        self._url_template = url_template
        self._clone_seconds = clone_seconds
        self._check_seconds = check_seconds
        self._retry_seconds = retry_seconds
        # An offline worker would otherwise try (and wait for) a clone on every job of a missing repository.
        self._failed: dict[str, tuple[float, str]] = {}

    def path(self, repo: str) -> Path:
        return self.base / repo_dirname(repo)

    def self_test(self) -> str | None:
        """None when git runs here (every `applies` check needs it), else why not, in one line."""
        try:
            done = self._git(["--version"], timeout=self._check_seconds)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"SWE-bench `applies` needs git, which cannot run here: {exc}"
        return (
            None
            if done.returncode == 0
            else f"SWE-bench `applies` needs git: `git --version` exited {done.returncode}"
        )

    def git_dir(self, repo: str) -> Path | None:
        """The clone's git directory (``<path>/.git`` of a normal clone, the path itself when bare), if
        present."""
        path = self.path(repo)
        for candidate in (path / ".git", path):
            if (candidate / "HEAD").is_file() and (candidate / "objects").is_dir():
                return candidate
        return None

    def check(self, repo: str, commit: str, diff: str) -> ApplyCheck:
        """Whether ``diff`` applies (``git apply --check``) to ``repo`` at ``commit``."""
        if not _COMMIT.fullmatch(commit):
            return ApplyCheck(None, f"base_commit {commit!r} of {repo} is not a commit hash")
        try:
            git_dir = self.ensure(repo)
        except (_Unavailable, ValueError) as exc:
            return ApplyCheck(None, str(exc))
        where = ["--git-dir", str(git_dir)]
        try:
            with tempfile.TemporaryDirectory(prefix="swarmq-apply-") as scratch:
                env = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
                read = self._git(
                    [*where, "read-tree", f"{commit}^{{commit}}"], env=env, timeout=self._check_seconds
                )
                if read.returncode != 0:
                    return ApplyCheck(
                        None,
                        f"commit {commit} of {repo} is not in {git_dir} (fetch it there): "
                        f"{git_error(read.stderr)}",
                    )
                args = [*where, "apply", "--check", "--cached", f"-p{strip_level(diff)}", "-"]
                applied = self._git(args, env=env, stdin=diff, timeout=self._check_seconds)
        except (OSError, subprocess.SubprocessError) as exc:
            return ApplyCheck(None, f"git failed on {repo} at {commit}: {first_line(exc)}")
        if applied.returncode != 0:
            return ApplyCheck(False, git_error(applied.stderr))
        return ApplyCheck(True, "ok")

    def ensure(self, repo: str) -> Path:
        """The clone's git directory, cloning it first when missing; raises `_Unavailable` with the reason."""
        git_dir = self.git_dir(repo)
        if git_dir is not None:
            return git_dir
        failed = self._failed.get(repo)
        if failed is not None and time.monotonic() - failed[0] < self._retry_seconds:
            raise _Unavailable(failed[1])
        try:
            return self._clone(repo)
        except _Unavailable as exc:
            self._failed[repo] = (time.monotonic(), str(exc))
            raise

    def _clone(self, repo: str) -> Path:
        path = self.path(repo)
        owner, name = repo.split("/")
        url = self._url_template.format(repo=repo, owner=owner, name=name)
        missing = f"repository {repo} is not in {self.base} (put a git clone at {path})"
        try:
            self.base.mkdir(parents=True, exist_ok=True)
            with _locked(self.base / f".{path.name}.lock"):
                git_dir = self.git_dir(repo)  # another worker may have cloned it while this one waited
                if git_dir is not None:
                    return git_dir
                partial = self.base / f".{path.name}.partial"
                shutil.rmtree(partial, ignore_errors=True)  # left by a worker killed mid-clone
                log.info("repos: cloning %s into %s (once; other workers wait for it)", url, path)
                done = self._git(
                    ["clone", "--bare", "--quiet", url, str(partial)], timeout=self._clone_seconds
                )
                if done.returncode != 0:
                    shutil.rmtree(partial, ignore_errors=True)
                    raise _Unavailable(f"{missing}; cloning {url} failed: {git_error(done.stderr)}")
                partial.rename(path)
        except (OSError, subprocess.SubprocessError) as exc:
            raise _Unavailable(f"{missing}; cloning {url} failed: {first_line(exc)}") from None
        return path


@contextmanager
def _locked(lock: Path) -> Iterator[None]:
    """An exclusive lock between processes (and threads: flock holds per open file), released on exit or
    death."""
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
