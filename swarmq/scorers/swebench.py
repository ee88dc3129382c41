"""SWE-bench scoring without the repository: find the patch in the model output and check it is a
well-formed unified diff. Whether it resolves the issue is the SWE-bench harness's job, not ours."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from swarmq.scorers.base import Score

_FENCE = re.compile(r"^```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:^```[ \t]*$|\Z)", re.DOTALL | re.MULTILINE)
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_GIT_HEADERS = (
    "diff --git ",
    "index ",
    "new file mode ",
    "deleted file mode ",
    "old mode ",
    "new mode ",
    "similarity index ",
    "dissimilarity index ",
    "rename from ",
    "rename to ",
    "copy from ",
    "copy to ",
    "Binary files ",
)
_DIFF_LINE = (*_GIT_HEADERS, "--- ", "+++ ", "@@", " ", "+", "-", "\\")


@dataclass(frozen=True)
class DiffCheck:
    valid: bool
    reason: str
    """"ok", or what is wrong with the line it was found on."""
    files: list[str] = field(default_factory=list)
    added: int = 0
    removed: int = 0
    hunks: int = 0


def _looks_like_diff(text: str) -> bool:
    return bool(re.search(r"^(diff --git |--- \S|@@ -\d)", text, re.MULTILINE))


def _raw_diff(text: str) -> str | None:
    """From the first diff header to the last line that can belong to a diff (drops trailing prose)."""
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.startswith(("diff --git ", "--- ", "@@ -"))), None)
    if start is None:
        return None
    end = start
    while end < len(lines) and (lines[end] == "" or lines[end].startswith(_DIFF_LINE)):
        end += 1
    return "\n".join(lines[start:end]).rstrip("\n") + "\n"


def extract_diff(text: str) -> str | None:
    """The patch in a model's output: fenced (```diff, ```patch or plain, also unterminated when
    max_tokens cut it) or raw; several diff fences are joined. None if nothing diff-like is there."""
    if not text or not text.strip():
        return None
    blocks = [body for lang, body in _FENCE.findall(text) if lang in ("diff", "patch") or _looks_like_diff(body)]
    found = [d for d in map(_raw_diff, blocks) if d]
    if found:
        return "".join(found)
    return _raw_diff(text)


def _path(header: str) -> str:
    name = header[4:].split("\t")[0].strip()
    return name[2:] if name.startswith(("a/", "b/")) else name


def validate_diff(diff: str) -> DiffCheck:
    """Parse as a unified diff: ---/+++ pairs, @@ headers whose line counts match their bodies."""
    lines = diff.splitlines()
    files: list[str] = []
    added = removed = hunks = 0
    file_hunks = 0
    i = 0

    def bad(reason: str) -> DiffCheck:
        return DiffCheck(False, reason, files, added, removed, hunks)

    while i < len(lines):
        line = lines[i]
        if line.startswith("--- "):
            if files and file_hunks == 0:
                return bad(f"file {files[-1]} has no hunks")
            if i + 1 >= len(lines) or not lines[i + 1].startswith("+++ "):
                return bad(f"line {i + 1}: '---' header not followed by '+++'")
            new = _path(lines[i + 1])
            files.append(_path(line) if new == "/dev/null" else new)
            file_hunks, i = 0, i + 2
            continue
        if line.startswith("@@"):
            m = _HUNK.match(line)
            if not files:
                return bad(f"line {i + 1}: hunk before any file header")
            if not m:
                return bad(f"line {i + 1}: malformed hunk header {line[:60]!r}")
            old = int(m.group(2) if m.group(2) is not None else 1)
            new_n = int(m.group(4) if m.group(4) is not None else 1)
            want_old, want_new = old, new_n
            i += 1
            while old > 0 or new_n > 0:
                if i >= len(lines):
                    got = f"{want_old - old}/{want_new - new_n}"
                    return bad(
                        f"truncated: hunk {hunks + 1} in {files[-1]} ends early (expected "
                        f"{want_old}/{want_new} old/new lines, got {got})"
                    )
                body = lines[i]
                if body.startswith("\\"):
                    i += 1
                    continue
                tag = body[:1]
                if tag in ("", " "):
                    old, new_n = old - 1, new_n - 1
                elif tag == "-":
                    old, removed = old - 1, removed + 1
                elif tag == "+":
                    new_n, added = new_n - 1, added + 1
                else:
                    return bad(f"line {i + 1}: hunk {hunks + 1} in {files[-1]}: body shorter than its @@ line counts")
                if old < 0 or new_n < 0:
                    return bad(f"line {i + 1}: hunk {hunks + 1} in {files[-1]}: body longer than its @@ line counts")
                i += 1
            hunks, file_hunks = hunks + 1, file_hunks + 1
            continue
        if line == "" or line.startswith((*_GIT_HEADERS, "\\")):  # "\ No newline at end of file"
            i += 1
            continue
        if line.startswith(("+", "-", " ")) and files:
            return bad(f"line {i + 1}: {line[:40]!r} outside any hunk (body longer than its @@ line counts?)")
        return bad(f"line {i + 1}: not part of a unified diff: {line[:60]!r}")
    if not files:
        return bad("no file touched")
    if file_hunks == 0:
        return bad(f"file {files[-1]} has no hunks")
    if added + removed == 0:
        return bad("changes nothing (context lines only)")
    return DiffCheck(True, "ok", files, added, removed, hunks)


def score_swebench(issue_data: dict[str, Any], completion: str) -> Score:
    """valid: a well-formed diff was found; invalid: one was found but is malformed; empty: none found."""
    start = time.perf_counter()
    diff = extract_diff(completion)
    if diff is None:
        detail: dict[str, Any] = {
            "files": [],
            "added": 0,
            "removed": 0,
            "hunks": 0,
            "reason": "no diff found",
        }
        return Score(False, "empty", detail, time.perf_counter() - start)
    check = validate_diff(diff)
    detail = {
        "files": check.files,
        "added": check.added,
        "removed": check.removed,
        "hunks": check.hunks,
        "reason": check.reason,
    }
    gold = issue_data.get("patch")
    if isinstance(gold, str) and gold.strip():
        detail["gold_files"] = validate_diff(gold).files
        detail["same_files"] = sorted(set(check.files)) == sorted(set(detail["gold_files"]))
    status = "valid" if check.valid else "invalid"
    return Score(check.valid, status, detail, time.perf_counter() - start)
