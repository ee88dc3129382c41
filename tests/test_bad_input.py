"""The bad-input catalogue: every way a user can hand the CLI something wrong, each answered by one
`swarmq: error:` line naming the culprit, its documented exit code, no traceback, and nothing written
(no new rows in Postgres, no file left behind). One parametrized test, real services, real subprocesses.

Cases that need an existing experiment share one (`shared`), enqueued and run by a stand-in burst worker once
per module; the tables are compared before and after every case, so a case that writes is caught all the same.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis as redis_lib

from tests.conftest import swarmq
from tests.helpers import write_config

pytestmark = pytest.mark.services

# A valid experiment file; each enqueue case breaks one thing in it (`cfg`).
BASE = (
    "name: bad\n"
    "dataset: {benchmark: humaneval, limit: 2}\n"
    "model: {path: models/stand-in.gguf, n_ctx: 2048}\n"
    "generation: {max_tokens: 32}\n"
    "conditions: {a: {}}\n"
)
ROW = {"task_id": "t/0", "prompt": "def f():\n", "entry_point": "f", "test": "def check(c): pass\n"}
HARNESS = json.dumps({"resolved_ids": [], "unresolved_ids": ["HumanEval/0"]})
NOT_UTF8 = b"caf\xe9 \xff\xfe\n"


def cfg(old: str = "", new: str = "", *, extra: str = "") -> str:
    """BASE with ``old`` replaced by ``new`` (which must occur, so a typo here cannot make a case vacuous)."""
    assert old in BASE, old
    return (BASE.replace(old, new, 1) if old else BASE) + extra


def source(path: str) -> str:
    return cfg("limit: 2", f"source: '{{tmp}}/{path}'")


def case(
    id: str,
    args: list[str],
    code: int,
    fragment: str,
    *,
    files: dict[str, str | bytes | None] | None = None,
    env: dict[str, str] | None = None,
    marks: Any = (),
) -> Any:
    """One catalogue entry. ``{tmp}`` in args and text files is the case's own folder; a file whose content is
    None is created as an empty folder."""
    return pytest.param(args, code, fragment, files or {}, env or {}, id=id, marks=marks)


def enqueue(
    text: str | bytes,
    fragment: str,
    id: str,
    *,
    code: int = 2,
    files: dict[str, Any] | None = None,
    marks: Any = (),
) -> Any:
    return case(
        id,
        ["enqueue", "{tmp}/exp.yaml"],
        code,
        fragment,
        files={"exp.yaml": text, **(files or {})},
        marks=marks,
    )


def score(content: str | bytes | None, fragment: str, id: str) -> Any:
    return case(
        id, ["score", "humaneval", "{tmp}/samples.jsonl"], 2, fragment, files={"samples.jsonl": content}
    )


def import_eval(
    content: str | bytes | None, fragment: str, id: str, *, code: int = 2, condition: str = "a"
) -> Any:
    args = ["import-eval", "shared", "{tmp}/report.json", "--condition", condition, "--replicate", "0"]
    return case(id, args, code, fragment, files={"report.json": content})


def settings(env: dict[str, str], fragment: str, id: str) -> Any:
    return case(id, ["results", "shared"], 2, fragment, env=env)


# fmt: off
CATALOGUE = [
    # The experiment file.
    enqueue(BASE.encode() + b"# " + NOT_UTF8, "exp.yaml: not UTF-8 text", "config-not-utf8"),
    case("config-is-a-directory", ["enqueue", "{tmp}/exp.yaml"], 2, "is a directory", files={"exp.yaml": None}),
    case("config-missing", ["enqueue", "{tmp}/nowhere.yaml"], 2, "nowhere.yaml: experiment file not found"),
    enqueue("", "exp.yaml: the file is empty", "config-empty"),
    enqueue("- name: x\n", "expected a mapping of fields at the top level", "config-top-level-list"),
    enqueue(BASE + "name: again\n", "exp.yaml:6: duplicate key 'name' (first on line 1)", "duplicate-yaml-key"),
    enqueue(cfg("a: {}", "a: {router: affinity, router_temperature: .inf}"), "router_temperature", "router-temp-inf"),
    enqueue(cfg("a: {}", "a: {router: ucb, ucb_c: .inf}"), "conditions.a.ucb_c", "ucb-c-inf"),
    enqueue(cfg(extra="replicates: 1e9\n"), "exp.yaml:6: replicates", "replicates-1e9"),
    enqueue(cfg(extra="replicates: 1000000000\n"), "replicates: 1000000000 is above the limit", "replicates-huge"),
    enqueue(cfg("a: {}", "a: {agents: 100000}"), "conditions.a.agents: 100000 is above the limit", "agents-huge"),
    enqueue(cfg("n_ctx: 2048", "n_ctx: 1000000000000"), "model.n_ctx: 1000000000000 is above the limit", "n-ctx-huge"),
    enqueue(cfg("max_tokens: 32", "max_tokens: 2048"), "max_tokens (2048) must be below model.n_ctx (2048)",
            "max-tokens-fills-context"),
    enqueue(cfg("benchmark: humaneval", "benchmark: mbpp"), "unknown benchmark 'mbpp'", "unknown-benchmark"),
    enqueue(cfg("a: {}", "a: {router: randon}"), "conditions.a.router: unknown router 'randon'", "unknown-router"),
    enqueue(cfg("generation: {max_tokens: 32}", "generation: {max_tokens: 32, temperature: .nan}"),
            "generation.temperature", "temperature-nan"),
    enqueue(cfg("name: bad", "name: ../etc"), "exp.yaml:1: name", "bad-name"),
    enqueue(cfg(extra="success: {rule: resolved}\n"), "success.rule: 'resolved' cannot decide", "rule-resolved"),
    enqueue(cfg(extra="replicates: 3\nmax_jobs: 5\n"), "= 6 jobs, above max_jobs (5)", "above-max-jobs"),
    # The dataset the file points at.
    enqueue(source("rows.json"), "rows.json: not UTF-8 text", "dataset-json-not-utf8", files={"rows.json": NOT_UTF8}),
    enqueue(source("rows.jsonl"), "rows.jsonl: not UTF-8 text", "dataset-jsonl-not-utf8",
            files={"rows.jsonl": json.dumps(ROW).encode() + b"\n" + NOT_UTF8}),
    enqueue(source("rows.json"), "rows.json: the file is empty", "dataset-json-empty", files={"rows.json": ""}),
    enqueue(source("rows.jsonl"), "rows.jsonl: the file is empty", "dataset-jsonl-empty", files={"rows.jsonl": "\n"}),
    enqueue(source("rows"), "rows: a folder without a saved dataset", "dataset-empty-folder", files={"rows": None}),
    enqueue(source("rows.json"), "row 0: expected an object with fields, got int", "dataset-rows-not-objects",
            files={"rows.json": "[1, 2]"}),
    enqueue(source("rows.jsonl"), "rows.jsonl:2: expected an object with fields, got list", "dataset-jsonl-list-row",
            files={"rows.jsonl": json.dumps(ROW) + "\n[1, 2]\n"}),
    enqueue(source("rows.json"), "expected a list of rows or an object with an 'issues' list", "dataset-json-object",
            files={"rows.json": '{"rows": []}'}),
    enqueue(source("rows.json"), "rows.json: the dataset has no rows", "dataset-json-no-rows",
            files={"rows.json": "[]"}),
    enqueue(source("rows.csv"), "unsupported dataset file type '.csv'", "dataset-csv", files={"rows.csv": "a,b\n"}),
    enqueue(source("rows.json"), "missing field 'test'", "dataset-row-missing-field",
            files={"rows.json": json.dumps([{**ROW, "test": None}])}),
    case("limit-zero", ["enqueue", "{tmp}/exp.yaml", "--limit", "0"], 2, "--limit must be at least 1",
         files={"exp.yaml": BASE}),
    case("name-clash", ["enqueue", "{tmp}/exp.yaml", "--name", "shared"], 4,
         "experiment 'shared' exists with a different configuration", files={"exp.yaml": BASE}),
    # Settings from the environment.
    settings({"SWARMQ_DATABASE_URL": "notaurl"}, "SWARMQ_DATABASE_URL: 'notaurl' is not a Postgres URL", "db-url"),
    settings({"SWARMQ_REDIS_URL": "notaurl"}, "SWARMQ_REDIS_URL: 'notaurl' is not a Redis URL", "redis-url"),
    settings({"SWARMQ_HEARTBEAT_SECONDS": "0"}, "SWARMQ_HEARTBEAT_SECONDS", "heartbeat-zero"),
    settings({"SWARMQ_HEARTBEAT_SECONDS": "soon"}, "SWARMQ_HEARTBEAT_SECONDS", "heartbeat-not-a-number"),
    settings({"SWARMQ_LEASE_SECONDS": "-1"}, "SWARMQ_LEASE_SECONDS", "lease-negative"),
    settings({"SWARMQ_MAX_ATTEMPTS": "0"}, "SWARMQ_MAX_ATTEMPTS", "max-attempts-zero"),
    settings({"SWARMQ_HEARTBEAT_SECONDS": "30", "SWARMQ_LEASE_SECONDS": "60"},
             "SWARMQ_LEASE_SECONDS: 60 s must be more than twice SWARMQ_HEARTBEAT_SECONDS", "heartbeat-vs-lease"),
    # Samples files for `score humaneval`.
    score(NOT_UTF8, "samples.jsonl: not UTF-8 text", "samples-not-utf8"),
    score('[1, 2]\n', "samples.jsonl:1: expected an object with task_id and completion, got list", "samples-list"),
    score("null\n", "samples.jsonl:1: expected an object with task_id and completion, got null", "samples-null"),
    score(None, "samples.jsonl: is a directory", "samples-directory"),
    score("", "samples.jsonl: the file is empty", "samples-empty"),
    score("\n  \n", "samples.jsonl: the file is empty", "samples-blank-lines"),
    score("{oops\n", "samples.jsonl:1: not JSON", "samples-not-json"),
    score(json.dumps({"task_id": "HumanEval/999", "completion": ""}), "unknown task_id 'HumanEval/999'",
          "samples-unknown-task"),
    score(json.dumps({"task_id": "HumanEval/0", "completion": 3}), "has no string 'completion'", "samples-no-text"),
    case("samples-missing", ["score", "humaneval", "{tmp}/none.jsonl"], 2, "samples file not found"),
    # Queries and exports of experiments.
    case("results-unknown", ["results", "ghost"], 4, "unknown experiment 'ghost'"),
    case("status-unknown", ["status", "ghost"], 4, "unknown experiment 'ghost'"),
    case("state-show-unknown", ["state", "show", "ghost"], 4, "unknown experiment 'ghost'"),
    case("results-bad-by", ["results", "shared", "--by", "colour"], 2, "--by: unknown grouping 'colour'"),
    case("results-bad-format", ["results", "shared", "--format", "xml"], 2, "'xml' is not one of"),
    case("export-bad-format", ["export", "shared", "--format", "xlsx", "-o", "{tmp}/out.x"], 2,
         "--format: unknown format 'xlsx'"),
    case("export-swebench-no-condition", ["export", "shared", "--format", "swebench", "-o", "{tmp}/p.jsonl"], 2,
         "--format swebench needs --condition and --replicate"),
    case("export-unknown", ["export", "ghost", "-o", "{tmp}/out.jsonl"], 4, "unknown experiment 'ghost'"),
    import_eval("{not json", "report.json: not JSON", "report-not-json"),
    import_eval(json.dumps({"score": 1}), "not a SWE-bench harness report", "report-not-harness"),
    import_eval(json.dumps([1, 2]), "not a SWE-bench harness report", "report-json-list"),
    import_eval(None, "report.json: is a directory", "report-directory"),
    import_eval(NOT_UTF8, "report.json: not UTF-8 text", "report-not-utf8"),
    import_eval(json.dumps({"resolved_ids": ["x__y-1"]}), "report is not for shared/a/r0", "report-foreign", code=4),
    import_eval(HARNESS, "experiment 'shared' has no condition 'zz'", "report-unknown-condition", condition="zz"),
    case("report-missing", ["import-eval", "shared", "{tmp}/none.json", "--condition", "a"], 2, "report not found"),
    case("replay-unknown-job", ["replay", "999999"], 4, "no job with id 999999"),
    case("replay-not-a-number", ["replay", "seven"], 2, "Invalid value for 'job_id'"),
    # Workers.
    case("workers-cpus-zero", ["workers", "--cpus", "0"], 2, "--cpus must be at least 1"),
    case("workers-cpu-old-spelling-zero", ["workers", "--cpu", "0"], 2, "--cpus must be at least 1"),
    case("workers-cpu-and-cpus", ["workers", "--cpu", "1", "--cpus", "1"], 2, "give --cpus N (--cpu N is its old"),
    # Formats: a command refuses a format it cannot write, never prints a table instead.
    case("status-csv", ["status", "shared", "--format", "csv"], 2, "'csv' is not one of 'table', 'json'"),
    case("workers-list-csv", ["workers", "list", "--format", "csv"], 2, "'csv' is not one of 'table', 'json'"),
    case("state-show-csv", ["state", "show", "shared", "--format", "csv"], 2, "'csv' is not one of"),
    # Lifecycle commands that would destroy or guess.
    case("delete-without-yes", ["delete", "shared"], 2, "pass --yes to confirm"),
    case("retry-without-what", ["retry", "shared"], 2, "say what to retry: --failed"),
    case("worker-both-devices", ["worker", "--gpu", "0", "--cpu"], 2, "choose exactly one of --gpu N or --cpu"),
    case("worker-no-device", ["worker"], 2, "choose exactly one of --gpu N or --cpu"),
    case("worker-model-directory", ["worker", "--cpu", "--model", "{tmp}/m.gguf"], 5, "model path is not a file",
         files={"m.gguf": None}),
    case("worker-model-not-gguf", ["worker", "--cpu", "--model", "{tmp}/m.gguf"], 5, "not a GGUF file",
         files={"m.gguf": b"PK\x03\x04 a zip"}),
    case("worker-model-missing", ["worker", "--cpu", "--model", "{tmp}/none.gguf"], 5, "model file not found"),
]
# fmt: on


def counts(database_url: str) -> tuple[int, int, int, int]:
    """Rows of experiments, issues, jobs and outcomes; a refused command changes none of them."""
    with psycopg.connect(database_url.replace("+psycopg", "")) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM experiments), (SELECT count(*) FROM issues), (SELECT count(*) FROM jobs), "
            "(SELECT count(*) FROM outcomes)"
        ).fetchone()
        assert row is not None
        return row


def tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def shared_env(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """Services with one finished experiment, `shared` (humaneval, condition a, 2 jobs), for the whole module.

    Not `services_env`: it empties the tables before every test, and the catalogue is one test per case."""
    with psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("TRUNCATE experiments, issues, jobs, outcomes RESTART IDENTITY CASCADE")
    r = redis_lib.Redis.from_url(redis_url)
    r.flushdb()
    keep = {k: v for k, v in os.environ.items() if not k.startswith("SWARMQ_")}
    env = {
        **keep,
        "SWARMQ_DATABASE_URL": database_url,
        "SWARMQ_REDIS_URL": redis_url,
        "SWARMQ_REAPER_SECONDS": "1",
    }
    config = write_config(tmp_path_factory.mktemp("shared"), name="shared", limit=2, conditions={"a": {}})
    e = swarmq("enqueue", str(config), env=env)
    assert e.returncode == 0, e.stderr
    w = swarmq("worker", "--cpu", "--burst", "--generator", "tests.fakes:hash_generator", env=env)
    assert w.returncode == 0, w.stderr
    assert counts(database_url) == (1, 2, 2, 2)
    yield env
    r.flushdb()


@pytest.mark.parametrize(("args", "code", "fragment", "files", "env"), CATALOGUE)
def test_bad_input_is_one_line_and_writes_nothing(
    tmp_path: Path,
    shared_env: dict[str, str],
    database_url: str,
    args: list[str],
    code: int,
    fragment: str,
    files: dict[str, str | bytes | None],
    env: dict[str, str],
) -> None:
    for name, content in files.items():
        if content is None:
            (tmp_path / name).mkdir()
        elif isinstance(content, bytes):
            (tmp_path / name).write_bytes(content)
        else:
            (tmp_path / name).write_text(content.replace("{tmp}", str(tmp_path)))
    before_rows, before_files = counts(database_url), tree(tmp_path)
    r = swarmq(*(a.replace("{tmp}", str(tmp_path)) for a in args), env={**shared_env, **env}, timeout=120)
    assert "Traceback" not in r.stderr, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("swarmq: error: ")]
    assert len(errors) == 1, r.stderr
    assert fragment in errors[0]
    assert r.returncode == code, r.stderr
    assert counts(database_url) == before_rows
    assert tree(tmp_path) == before_files
