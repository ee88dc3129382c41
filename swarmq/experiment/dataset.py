"""Read a benchmark's rows (bundled, local file, hub), validate them and pick the issues an experiment runs.

Every problem surfaces as one ``DatasetError`` line naming the source, the row (0-based index, and the
instance id when the row has one) and the field.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from swarmq.benchmarks.base import Benchmark, Issue, TaskTypes
from swarmq.benchmarks.registry import get_benchmark
from swarmq.benchmarks.swebench import study_rows
from swarmq.errors import DatasetError
from swarmq.experiment.config import DatasetConfig
from swarmq.files import (
    Rows,
    bad_text,
    check_regular,
    file_sha256,
    json_lines,
    kind,
    loads,
    read_text,
    user_path,
    where,
)

HUB_PREFIX = "hub:"
SHA = re.compile(r"[0-9a-f]{40}")
"""A full git commit sha: a revision that names one commit forever."""
SAVED_MARKERS = ("state.json", "dataset_dict.json")
"""Files `Dataset.save_to_disk` / `DatasetDict.save_to_disk` write: a folder without one holds no dataset."""


@dataclass(frozen=True)
class DatasetRecord:
    """What an experiment read, stored with it (`experiments.dataset`): the source, the revision actually
    read (hub: the commit sha; a local file: its sha256; bundled: the package that ships it) and a
    fingerprint of the issues used, so that a rerun can show it used the same data."""

    source: str
    revision: str | None
    fingerprint: str
    issues: int

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "revision": self.revision,
            "fingerprint": self.fingerprint,
            "issues": self.issues,
        }


def fingerprint(issues: Sequence[Issue]) -> str:
    """sha256 over the issues an experiment runs, in run order, with every field a job reads."""
    h = hashlib.sha256()
    for i in issues:
        row = [i.instance_id, i.problem, i.task_type, i.category, i.repo, i.data]
        h.update(json.dumps(row, sort_keys=True, default=str).encode())
        h.update(b"\n")
    return h.hexdigest()


def load_dataset(
    cfg: DatasetConfig, seed: int, progress: Callable[[str], None] | None = None
) -> tuple[list[Issue], DatasetRecord]:
    """The issues an experiment runs, in run order (``seed`` drives ``shuffle``), and the record of them."""
    say = progress or (lambda _msg: None)
    bench = get_benchmark(cfg.benchmark)
    label = f"bundled {bench.name}" if cfg.source == "bundled" else cfg.source
    say(f"reading {label}")
    rows, revision = read_rows(cfg, bench)
    types = TaskTypes(dict(cfg.category_map), cfg.task_types, read_categories(cfg.categories_file))
    issues = rows_to_issues(rows, bench, types, label)
    selected = select_issues(issues, cfg, seed, label)
    say(
        f"{len(selected)} of {len(issues)} issues selected from {label}"
        + (f" at {revision}" if revision else "")
    )
    return selected, DatasetRecord(cfg.source, revision, fingerprint(selected), len(selected))


def load_issues(cfg: DatasetConfig, seed: int, progress: Callable[[str], None] | None = None) -> list[Issue]:
    """The issues an experiment runs, in run order (``seed`` drives ``shuffle``)."""
    return load_dataset(cfg, seed, progress)[0]


def read_categories(path: str | None) -> dict[str, str]:
    """``dataset.categories_file``: a JSON object instance id → category (empty when unset)."""
    if path is None:
        return {}
    label = f"dataset.categories_file {path}"
    try:
        document = loads(read_text(user_path(path, label), label))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{label}: not valid JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(document, dict) or not all(isinstance(v, str) and v for v in document.values()):
        raise DatasetError(f"{label}: expected a JSON object mapping instance id to a category name")
    if (bad := bad_text(document)) is not None:
        raise DatasetError(f"{label}: {where(bad[0])}: {bad[1]}")
    return {str(k): v for k, v in document.items()}


def read_rows(cfg: DatasetConfig, bench: Benchmark) -> tuple[list[Any], str | None]:
    """Raw rows of ``cfg.source`` and the revision they were read at; the hub is contacted only for
    ``hub:<name>``."""
    if cfg.source == "bundled":
        return bench.bundled_rows(), bench.bundled_revision()
    if cfg.source.startswith(HUB_PREFIX):
        name = cfg.source.removeprefix(HUB_PREFIX)
        sha = hub_commit(name, cfg.revision, cfg.source)
        ds = _with_datasets(lambda d: d.load_dataset(name, split=cfg.split, revision=sha), cfg.source)
        return _rows_from_dataset(ds, cfg.split, cfg.source), sha
    path = user_path(cfg.source, cfg.source)
    if not path.exists():
        raise DatasetError(f"dataset file not found: {path}")
    if path.is_dir():  # a folder written by Dataset.save_to_disk / DatasetDict.save_to_disk
        if not any((path / marker).is_file() for marker in SAVED_MARKERS):
            raise DatasetError(
                f"{cfg.source}: a folder without a saved dataset (expected what Dataset.save_to_disk "
                "writes, or a .json, .jsonl or .parquet file)"
            )
        ds = _with_datasets(lambda d: d.load_from_disk(str(path)), cfg.source)
        return _rows_from_dataset(ds, cfg.split, cfg.source), None
    suffix = path.suffix.lower()
    if suffix not in (".json", ".jsonl", ".parquet"):
        raise DatasetError(
            f"{cfg.source}: unsupported dataset file type {suffix!r} (use .json, .jsonl or .parquet)"
        )
    check_regular(path, cfg.source)  # before the hash: /dev/zero or a FIFO would never end
    revision = f"sha256:{file_sha256(path)}"
    if suffix == ".json":
        return _read_json(read_text(path, cfg.source), cfg.source), revision
    if suffix == ".jsonl":
        return json_lines(read_text(path, cfg.source), cfg.source), revision
    if path.stat().st_size == 0:  # .parquet
        raise DatasetError(f"{cfg.source}: the file is empty")
    ds = _with_datasets(lambda d: d.load_dataset("parquet", data_files=str(path), split="train"), cfg.source)
    return _rows_from_dataset(ds, cfg.split, cfg.source), revision


def hub_commit(name: str, revision: str | None, label: str) -> str:
    """The commit sha a hub dataset is read at: ``revision`` itself when it is one (no network), else what
    the hub resolves it (or the default branch) to now. Pinned this way, every row comes from one commit."""
    if revision is not None and SHA.fullmatch(revision):
        return revision
    try:
        from huggingface_hub import HfApi

        sha = HfApi().dataset_info(name, revision=revision).sha
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DatasetError(
            f"{label}: cannot resolve revision {revision or '(default branch)'}: {first} "
            "(offline? pin dataset.revision to a commit sha already in the local cache)"
        ) from exc
    if not sha:
        raise DatasetError(
            f"{label}: the hub returned no commit for revision {revision or '(default branch)'}"
        )
    return str(sha)


def _with_datasets(fetch: Callable[[Any], Any], label: str) -> Any:
    """Run ``fetch(datasets)`` quietly; the library raises many exception types, the user gets one line."""
    import datasets  # heavy: imported only when a file or hub set is read

    datasets.disable_progress_bar()
    datasets.logging.set_verbosity_error()
    try:
        return fetch(datasets)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DatasetError(f"{label}: cannot load: {first}") from exc


def _rows_from_dataset(ds: Any, split: str, label: str) -> Rows:
    """Rows of a loaded ``datasets`` object; the step shared by the hub, parquet, JSONL and folder paths."""
    import datasets

    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise DatasetError(f"{label}: no split {split!r} (has {', '.join(ds)})")
        ds = ds[split]
    if not isinstance(ds, datasets.Dataset):
        raise DatasetError(f"{label}: expected a table of rows, got {type(ds).__name__}")
    rows: Rows = ds.to_list()
    return rows


def _read_json(text: str, label: str) -> list[Any]:
    """A list of rows, or the study's ``{"metadata": ..., "issues": [...]}`` document."""
    try:
        document = loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":  # JSON lines saved under a .json name, as hub exports often are
            return json_lines(text, label)
        raise DatasetError(f"{label}: not valid JSON: {exc.msg} (line {exc.lineno})") from None
    rows = study_rows(document)
    if rows is None and isinstance(document, list):
        rows = document
    if rows is None:
        raise DatasetError(f"{label}: expected a list of rows or an object with an 'issues' list")
    return rows


def rows_to_issues(rows: Sequence[Any], bench: Benchmark, types: TaskTypes, label: str) -> list[Issue]:
    """Validate every row and convert it; instance ids must be unique."""
    if not rows:
        raise DatasetError(f"{label}: the dataset has no rows")
    issues: list[Issue] = []
    seen: dict[str, int] = {}
    for index, row in enumerate(rows):
        where = _where(label, index, row, bench.id_field)
        _check_row(row, bench.required_fields, where)
        try:
            issue = bench.to_issue(row, types)
        except ValueError as exc:
            raise DatasetError(f"{where}: {exc}") from None
        if issue.instance_id in seen:
            first = seen[issue.instance_id]
            raise DatasetError(
                f"{label}: duplicate instance id {issue.instance_id!r} (rows {first} and {index})"
            )
        seen[issue.instance_id] = index
        issues.append(issue)
    return issues


def _where(label: str, index: int, row: Any, id_field: str) -> str:
    instance = row.get(id_field) if isinstance(row, dict) else None
    suffix = f" (instance {instance!r})" if isinstance(instance, str) and instance.strip() else ""
    return f"{label} row {index}{suffix}"


def _check_row(row: Any, required: Sequence[str], at: str) -> None:
    if not isinstance(row, dict):
        raise DatasetError(f"{at}: expected an object with fields, got {kind(row)}")
    if (bad := bad_text(row)) is not None:  # rows from parquet or the hub meet the rule here
        raise DatasetError(f"{at}: field {where(bad[0])}: {bad[1]}")
    for name in required:
        value = row.get(name)
        if value is None:
            raise DatasetError(f"{at}: missing field {name!r}")
        if not isinstance(value, str):
            raise DatasetError(f"{at}: field {name!r} must be text, got {type(value).__name__}")
        if not value.strip():
            raise DatasetError(f"{at}: field {name!r} is empty")


def select_issues(
    issues: Sequence[Issue], cfg: DatasetConfig, seed: int, label: str = "dataset"
) -> list[Issue]:
    """Apply instance_ids, repos, categories, shuffle and limit, in that order."""
    selected = list(issues)
    if cfg.instance_ids:
        by_id = {issue.instance_id: issue for issue in issues}
        seen: set[str] = set()
        for wanted in cfg.instance_ids:
            if wanted not in by_id:
                raise DatasetError(f"dataset.instance_ids: unknown instance id {wanted!r} (not in {label})")
            if wanted in seen:
                raise DatasetError(f"dataset.instance_ids: {wanted!r} is listed twice")
            seen.add(wanted)
        selected = [by_id[wanted] for wanted in cfg.instance_ids]
    if cfg.repos:
        selected = [issue for issue in selected if issue.repo in cfg.repos]
    if cfg.categories:
        wanted_types = set(cfg.categories)
        selected = [i for i in selected if i.category in wanted_types or i.task_type in wanted_types]
    if cfg.shuffle:
        random.Random(seed).shuffle(selected)
    if cfg.limit is not None:
        selected = selected[: cfg.limit]
    if not selected:
        raise DatasetError(
            f"dataset is empty after filters ({_describe_filters(cfg)}; {len(issues)} in {label})"
        )
    return selected


def _describe_filters(cfg: DatasetConfig) -> str:
    parts = [f"{name}={getattr(cfg, name)}" for name in ("instance_ids", "repos", "categories")]
    return ", ".join(part for part in parts if not part.endswith("=[]"))
