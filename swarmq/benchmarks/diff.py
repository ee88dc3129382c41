"""Unified diffs in model output (pure): find the patch, and check that it is well formed. Whether it applies
is `repos.py`'s question; whether it resolves the issue is the SWE-bench harness's."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_FENCE = re.compile(r"^```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:^```[ \t]*$|\Z)", re.DOTALL | re.MULTILINE)
_FENCE_LINE = re.compile(r"^```", re.MULTILINE)
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


def extract_diff(text: str, *, opened: bool = False) -> str | None:
    """The patch in a model's output, or None if nothing diff-like is there.

    A diff before any fence is the answer: a plain prompt opens the ```diff fence itself, so a base model's
    diff comes unfenced, and what follows its closing fence is the model going on with the few-shot pattern
    (the next task's patch). ``opened`` (the prompt opened the fence) looks no further than that fence.
    Otherwise fenced diffs (```diff, ```patch or plain; unterminated when max_tokens cut it): the first
    complete one, joined with complete ones after it that patch other files (one fence per file); a fence
    that patches a file again is a second attempt and dropped, so two versions never merge into one patch.
    No complete one: the first (so validation says what is wrong with it). No fence: the raw diff.
    """
    if not text or not text.strip():
        return None
    fence = _FENCE_LINE.search(text)
    if fence is None:
        return _raw_diff(text)
    head = _raw_diff(text[: fence.start()])
    if head is not None or opened:
        return head
    blocks = [
        body for lang, body in _FENCE.findall(text) if lang in ("diff", "patch") or _looks_like_diff(body)
    ]
    found = [(d, validate_diff(d)) for d in map(_raw_diff, blocks) if d]
    if not found:
        return _raw_diff(text)
    first = next((i for i, (_, check) in enumerate(found) if check.valid), None)
    if first is None:
        return found[0][0]
    chosen, patched = [found[first][0]], set(found[first][1].files)
    for diff, check in found[first + 1 :]:
        if check.valid and patched.isdisjoint(check.files):
            chosen.append(diff)
            patched.update(check.files)
    return "".join(chosen)


def strip_level(diff: str) -> int:
    """The ``-p`` level for `git apply`: 1 when every file header carries git's a/ b/ prefixes, else 0 (models
    also write bare paths, which -p1 would cut the first directory off)."""
    paths = [ln[4:].split("\t")[0].strip() for ln in diff.splitlines() if ln.startswith(("--- ", "+++ "))]
    paths = [p for p in paths if p != "/dev/null"]
    return 1 if paths and all(p.startswith(("a/", "b/")) for p in paths) else 0


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
            where = f"hunk {hunks + 1} in {files[-1]}"
            body = _hunk_body(lines, i + 1, int(m.group(2) or 1), int(m.group(4) or 1), where)
            if isinstance(body, str):
                return bad(body)
            i, hunk_added, hunk_removed = body
            added, removed = added + hunk_added, removed + hunk_removed
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


def _hunk_body(lines: list[str], i: int, old: int, new: int, where: str) -> tuple[int, int, int] | str:
    """Walk one hunk's body from line ``i``: (next line, added, removed), or what is wrong with it."""
    want_old, want_new = old, new
    added = removed = 0
    while old > 0 or new > 0:
        if i >= len(lines):
            got = f"{want_old - old}/{want_new - new}"
            return f"truncated: {where} ends early (expected {want_old}/{want_new} old/new lines, got {got})"
        tag = lines[i][:1]
        if tag == "\\":  # "\ No newline at end of file"
            i += 1
            continue
        if tag in ("", " "):
            old, new = old - 1, new - 1
        elif tag == "-":
            old, removed = old - 1, removed + 1
        elif tag == "+":
            new, added = new - 1, added + 1
        else:
            return f"line {i + 1}: {where}: body shorter than its @@ line counts"
        if old < 0 or new < 0:
            return f"line {i + 1}: {where}: body longer than its @@ line counts"
        i += 1
    return i, added, removed
