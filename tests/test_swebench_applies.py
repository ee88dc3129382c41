"""SWE-bench's ``applies`` rule: a patch counts when it applies to the repository at the issue's base commit.

Pure tests cover extraction (a base model's diff ends at its closing fence; the first complete diff wins),
the helpers and the rule's plumbing. Tests marked ``git`` build a real repository with three commits in
tmp_path and a bare clone of it under a repositories directory; nothing touches the network (the clone URL
points at a local path).
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from swarmq.benchmarks.base import Issue
from swarmq.benchmarks.diff import extract_diff, strip_level, validate_diff
from swarmq.benchmarks.registry import BENCHMARKS
from swarmq.benchmarks.repos import Repos, git_error, repo_dirname, run_git
from swarmq.benchmarks.swebench import CLOSING_FENCE, SWEBench, score_applies
from swarmq.experiment.file import parse_config

REPO = "acme/calc"
CALC = "".join(f"def f{i}(x):\n    return x + {i}\n\n\n" for i in range(8))
README = "# calc\n\nA calculator.\n"


def _git(cwd: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def _edit(work: Path, path: str, old: str, new: str) -> None:
    file = work / path
    text = file.read_text()
    assert old in text, (path, old)
    file.write_text(text.replace(old, new, 1))


def _patch(work: Path, path: str, old: str, new: str) -> str:
    """A `git diff` of one edit to the work tree, which is then reset (so patches are made at its commit)."""
    _edit(work, path, old, new)
    diff = _git(work, "diff") + "\n"
    _git(work, "checkout", "--", path)
    return diff


class Fixture:
    """The fixture repository: its commits, patches made at commit 1, and where its clone lives."""

    def __init__(self, root: Path) -> None:
        self.work = root / "upstream" / "calc"
        self.work.mkdir(parents=True)
        _git(self.work, "init", "-q", "-b", "main")
        (self.work / "src").mkdir()
        (self.work / "src" / "calc.py").write_text(CALC)
        (self.work / "README.md").write_text(README)
        _git(self.work, "add", ".")
        _git(self.work, "commit", "-qm", "one")
        self.c1 = _git(self.work, "rev-parse", "HEAD")
        self.patch = _patch(self.work, "src/calc.py", "return x + 3", "return x + 30")
        self.gold = _patch(self.work, "src/calc.py", "return x + 5", "return x - 5")
        self.readme = _patch(self.work, "README.md", "A calculator.", "A small calculator.")
        (self.work / "src" / "util.py").write_text("def double(x):\n    return 2 * x\n")
        _git(self.work, "add", ".")
        _git(self.work, "commit", "-qm", "two")
        self.c2 = _git(self.work, "rev-parse", "HEAD")
        _edit(self.work, "src/calc.py", "def f3(x):\n    return x + 3", "def f3(x):\n    return x + 3.0")
        _git(self.work, "commit", "-qam", "three: changes the context of the patch")
        self.c3 = _git(self.work, "rev-parse", "HEAD")
        self.repos_dir = root / "repos"
        self.repos_dir.mkdir()
        _git(root, "clone", "-q", "--bare", str(self.work), str(self.repos_dir / "acme__calc"))

    def data(self, commit: str, gold: str | None = None) -> dict[str, Any]:
        return {"repo": REPO, "base_commit": commit, "patch": self.gold if gold is None else gold}


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> Fixture:
    return Fixture(tmp_path_factory.mktemp("applies"))


class CountingGit:
    """The real git runner, counting calls by subcommand (and able to refuse them)."""

    def __init__(self, refuse: bool = False) -> None:
        self.calls: list[str] = []
        self.refuse = refuse
        self._lock = threading.Lock()

    def __call__(
        self,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdin: str | None = None,
        timeout: float,
    ) -> subprocess.CompletedProcess[str]:
        with self._lock:
            self.calls.append(next(a for a in args if not a.startswith("-") and "/" not in a))
        assert not self.refuse, f"git {' '.join(args)} was not expected"
        return run_git(args, env=env, stdin=stdin, timeout=timeout)


def fenced(diff: str) -> str:
    return f"Here is the fix:\n```diff\n{diff}```\nThat should do it."


# --- pure: the rule, stops and extraction ---------------------------------------------------------------------------


def test_applies_is_the_default_rule_of_swebench() -> None:
    cfg = parse_config(
        "name: t\ndataset:\n  benchmark: swebench\nmodel:\n  path: models/x.gguf\nconditions:\n  baseline: {}\n"
        "success: {rule: scorer}\n"
    )
    assert cfg.success.rule == "scorer"
    assert BENCHMARKS[cfg.dataset.benchmark].rules[0] == "applies"
    assert SWEBench.rules == ("applies", "valid_diff")


def test_unknown_rule_is_refused() -> None:
    with pytest.raises(
        ValueError, match=r"'resolved' is not a rule of swebench \(choose from scorer, applies"
    ):
        SWEBench(Repos(Path("unused"))).score(Issue("x", "p", "logic"), "", chat=True, rule="resolved")


def test_plain_prompts_stop_at_the_closing_fence_chat_replies_do_not() -> None:
    bench = SWEBench()
    assert bench.stops(chat=False) == (CLOSING_FENCE,) == ("\n```",)
    assert bench.stops(chat=True) == ()
    prompt = bench.prompt(Issue("x", "Bug.", "logic", repo=REPO), [], chat=False, system=None)
    assert prompt.text.endswith("```diff\n")


DIFF = (
    "--- a/src/calc.py\n+++ b/src/calc.py\n@@ -1,2 +1,2 @@\n def f0(x):\n-    return x + 0\n+    return x\n"
)
OTHER = DIFF.replace("src/calc.py", "src/util.py")
SECOND = DIFF.replace("+    return x\n", "+    return x * 1\n")


def test_a_base_models_diff_is_found_without_its_opening_fence() -> None:
    stopped = DIFF.rstrip("\n")  # the stop "\n```" takes the newline before the fence with it
    assert extract_diff(stopped, opened=True) == extract_diff(stopped) == DIFF
    assert validate_diff(DIFF).valid


def test_a_base_model_going_on_after_its_fence_keeps_only_its_own_diff() -> None:
    # A backend that ignores the stop string: the model closes its fence and invents the next few-shot task.
    text = f"{DIFF}```\n\n### Task\nRepository: acme/other\n\n### Patch\n```diff\n{OTHER}```\n"
    assert extract_diff(text, opened=True) == DIFF
    assert extract_diff(text) == DIFF  # a diff before any fence is the answer, whoever opened the fence


def test_a_base_model_that_closes_the_fence_at_once_wrote_no_diff() -> None:
    text = f"```\n\n### Task\nRepository: acme/other\n\n### Patch\n```diff\n{OTHER}```\n"
    assert extract_diff(text, opened=True) is None


def test_chat_second_version_of_a_file_is_not_concatenated() -> None:
    text = f"{fenced(DIFF)}\nOr, more simply:\n```diff\n{SECOND}```\n"
    assert extract_diff(text) == DIFF


def test_chat_first_complete_diff_wins_over_an_earlier_broken_one() -> None:
    broken = DIFF.replace("@@ -1,2 +1,2 @@", "@@ -1,3 +1,3 @@")
    assert not validate_diff(broken).valid
    assert extract_diff(f"{fenced(broken)}\nFixed:\n```diff\n{SECOND}```\n") == SECOND
    assert extract_diff(fenced(broken)) == broken  # nothing complete: the first, so validation says why


def test_chat_one_fence_per_file_is_still_joined() -> None:
    diff = extract_diff(f"{fenced(DIFF)}\nAnd the helper:\n```diff\n{OTHER}```\n")
    assert diff == DIFF + OTHER


@pytest.mark.parametrize(
    ("diff", "level"),
    [
        (DIFF, 1),
        (DIFF.replace("a/src", "src").replace("b/src", "src"), 0),
        ("--- /dev/null\n+++ b/new.py\n@@ -0,0 +1 @@\n+x\n", 1),
        ("--- /dev/null\n+++ new.py\n@@ -0,0 +1 @@\n+x\n", 0),
    ],
)
def test_strip_level(diff: str, level: int) -> None:
    assert strip_level(diff) == level


def test_repo_dirname() -> None:
    assert repo_dirname("django/django") == "django__django"
    assert repo_dirname("scikit-learn/scikit-learn") == "scikit-learn__scikit-learn"
    for bad in ("django", "a/b/c", "../x", "a/..", "-x/--upload-pack=y z"):
        with pytest.raises(ValueError, match="is not of the form owner/name"):
            repo_dirname(bad)


def test_git_error_is_the_line_that_says_what_failed() -> None:
    stderr = "Checking patch src/calc.py...\nerror: patch failed: src/calc.py:7\nerror: src/calc.py: patch does not apply\n"
    assert git_error(stderr) == "patch failed: src/calc.py:7"
    assert (
        git_error("fatal: repository '/nowhere' does not exist\n") == "repository '/nowhere' does not exist"
    )
    assert git_error("") == "git failed without a message"


def test_no_git_is_run_for_empty_invalid_or_unplaceable_patches(tmp_path: Path) -> None:
    repos = Repos(tmp_path, git=CountingGit(refuse=True))
    empty = score_applies({"repo": REPO, "base_commit": "abc123"}, "I cannot fix this.", repos)
    assert (empty.success, empty.status, empty.detail["applies"]) == (False, "empty", False)
    broken = DIFF.replace("@@ -1,2 +1,2 @@", "@@ -1,3 +1,3 @@")
    invalid = score_applies({"repo": REPO, "base_commit": "abc123"}, fenced(broken), repos)
    assert (invalid.success, invalid.status, invalid.detail["applies"]) == (False, "invalid", False)
    assert invalid.detail["reason"].startswith("truncated: hunk 1 in src/calc.py")
    no_commit = score_applies({"repo": REPO, "base_commit": ""}, fenced(DIFF), repos)
    assert (no_commit.status, no_commit.detail["reason"]) == (
        "error",
        "the issue has no base_commit, so where the patch applies cannot be checked",
    )
    not_hash = score_applies({"repo": REPO, "base_commit": "--output=x"}, fenced(DIFF), repos)
    assert (
        not_hash.status == "error"
        and "'--output=x' of acme/calc is not a commit hash" in not_hash.detail["reason"]
    )
    assert list(tmp_path.iterdir()) == []


# --- git: a real repository ------------------------------------------------------------------------------------------


@pytest.mark.git
def test_a_patch_applies_where_it_was_made_not_where_its_context_changed(fx: Fixture) -> None:
    repos = Repos(fx.repos_dir)
    at_1 = score_applies(fx.data(fx.c1), fenced(fx.patch), repos)
    assert (at_1.success, at_1.status, at_1.detail["applies"], at_1.detail["reason"]) == (
        True,
        "applies",
        True,
        "ok",
    )
    at_2 = score_applies(fx.data(fx.c2), fenced(fx.patch), repos)  # commit 2 did not touch calc.py
    assert at_2.status == "applies"
    at_3 = score_applies(fx.data(fx.c3), fenced(fx.patch), repos)
    assert (at_3.success, at_3.status, at_3.detail["applies"]) == (False, "does_not_apply", False)
    assert at_3.detail["reason"].startswith("patch failed: src/calc.py:")
    assert at_3.detail["files"] == ["src/calc.py"]


@pytest.mark.git
def test_bare_paths_and_a_normal_clone_are_fine(fx: Fixture, tmp_path: Path) -> None:
    _git(
        tmp_path, "clone", "-q", str(fx.work), str(tmp_path / "acme__calc")
    )  # normal clone, with a work tree
    bare_paths = fx.patch.replace("a/src/", "src/").replace("b/src/", "src/")
    assert score_applies(fx.data(fx.c1), fenced(bare_paths), Repos(tmp_path)).status == "applies"


@pytest.mark.git
def test_same_files_compares_with_the_gold_patch(fx: Fixture) -> None:
    repos = Repos(fx.repos_dir)
    same = score_applies(fx.data(fx.c1), fenced(fx.patch), repos)
    assert (same.detail["files"], same.detail["gold_files"], same.detail["same_files"]) == (
        ["src/calc.py"],
        ["src/calc.py"],
        True,
    )
    other = score_applies(fx.data(fx.c1), fenced(fx.readme), repos)
    assert (other.status, other.detail["files"], other.detail["same_files"]) == (
        "applies",
        ["README.md"],
        False,
    )


@pytest.mark.git
def test_malformed_and_missing_diffs_are_model_failures(fx: Fixture) -> None:
    repos = Repos(fx.repos_dir)
    malformed = re.sub(r"^@@ -(\d+),7 \+(\d+),7 @@", r"@@ -\1,9 +\2,9 @@", fx.patch, flags=re.MULTILINE)
    assert malformed != fx.patch
    bad = score_applies(fx.data(fx.c1), fenced(malformed), repos)
    assert (bad.success, bad.status, bad.detail["applies"]) == (False, "invalid", False)
    none = score_applies(fx.data(fx.c1), "The bug is in f3, but I am not sure how to fix it.", repos)
    assert (none.success, none.status, none.detail["applies"]) == (False, "empty", False)


@pytest.mark.git
def test_missing_repository_that_cannot_be_cloned_is_a_scoring_error(fx: Fixture, tmp_path: Path) -> None:
    git = CountingGit()
    nowhere = str(tmp_path / "nowhere" / "{owner}__{name}")
    repos = Repos(tmp_path / "repos", git=git, url_template=nowhere)
    first = score_applies({**fx.data(fx.c1), "repo": "acme/gone"}, fenced(fx.patch), repos)
    assert (first.success, first.status, first.detail["applies"]) == (False, "error", False)
    reason = first.detail["reason"]
    assert "\n" not in reason
    assert reason.startswith(f"repository acme/gone is not in {tmp_path / 'repos'} (put a git clone at ")
    assert str(tmp_path / "repos" / "acme__gone") in reason and "nowhere/acme__gone" in reason
    again = score_applies({**fx.data(fx.c1), "repo": "acme/gone"}, fenced(fx.patch), repos)
    assert (again.status, again.detail["reason"]) == ("error", reason)
    assert git.calls == ["clone"]  # an offline worker does not retry the clone on every job
    assert sorted(p.name for p in (tmp_path / "repos").iterdir()) == [".acme__gone.lock"]


@pytest.mark.git
def test_missing_commit_is_a_scoring_error(fx: Fixture) -> None:
    result = score_applies(
        fx.data("0123456789abcdef0123456789abcdef01234567"), fenced(fx.patch), Repos(fx.repos_dir)
    )
    assert result.status == "error"
    assert result.detail["reason"].startswith(
        "commit 0123456789abcdef0123456789abcdef01234567 of acme/calc is not in"
    )


@pytest.mark.git
def test_a_missing_repository_is_cloned_once_by_concurrent_workers(fx: Fixture, tmp_path: Path) -> None:
    git = CountingGit()
    url = str(fx.work.parent / "{name}")
    workers = [
        Repos(tmp_path / "repos", git=git, url_template=url) for _ in range(3)
    ]  # as three processes would
    results: list[str] = []
    threads = [
        threading.Thread(
            target=lambda r=r: results.append(score_applies(fx.data(fx.c1), fenced(fx.patch), r).status)
        )
        for r in workers
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["applies"] * 3
    assert git.calls.count("clone") == 1
    assert sorted(p.name for p in (tmp_path / "repos").iterdir()) == [".acme__calc.lock", "acme__calc"]


@pytest.mark.git
def test_scoring_is_deterministic_and_leaves_no_temp_files(
    fx: Fixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    before = sorted(p.name for p in fx.repos_dir.rglob("*"))
    bench = SWEBench(Repos(fx.repos_dir))
    issue = Issue("acme__calc-1", "f3 is off", "logic", repo=REPO, data=fx.data(fx.c3))
    runs = [bench.score(issue, fenced(fx.patch), chat=True, rule="applies") for _ in range(3)]
    assert {(r.success, r.status, repr(r.detail)) for r in runs} == {
        (runs[0].success, "does_not_apply", repr(runs[0].detail))
    }
    assert list(scratch.iterdir()) == []
    assert sorted(p.name for p in fx.repos_dir.rglob("*")) == before


@pytest.mark.git
def test_scorer_rule_is_applies_and_valid_diff_is_unchanged(fx: Fixture) -> None:
    bench = SWEBench(Repos(fx.repos_dir))
    issue = Issue("acme__calc-1", "f3 is off", "logic", repo=REPO, data=fx.data(fx.c3))
    plain = fx.patch.rstrip("\n")  # a base model's completion, cut by the closing-fence stop
    scorer = bench.score(issue, plain, chat=False, rule="scorer")
    applies = bench.score(issue, plain, chat=False, rule="applies")
    assert (
        (scorer.status, scorer.detail)
        == (applies.status, applies.detail)
        == ("does_not_apply", applies.detail)
    )
    valid = bench.score(issue, plain, chat=False, rule="valid_diff")
    assert (valid.success, valid.status) == (True, "valid")
    assert "applies" not in valid.detail
