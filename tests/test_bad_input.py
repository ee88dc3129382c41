"""The bad-input catalogue: every way a user can hand the CLI something wrong, each answered by one
`swarmq: error:` line naming the culprit, its documented exit code, no traceback, and nothing written
(no new rows in Postgres, no file left behind). One parametrized test, real services, real subprocesses.

Cases that need an existing experiment share one (`shared`), enqueued and run by a stand-in burst worker once
per module; the tables are compared before and after every case, so a case that writes is caught all the same.
A case may also name text that must never reach stderr (a password), and files that are not text: FIFOs,
sockets, symlinks. What a refused write leaves behind, or a write to a device, FIFO or symlink does, is checked
beside the catalogue (`test_export_*`).
"""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
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


DEEP = 5000
"""Nesting that Python's parsers cannot follow (RecursionError) ..."""
SHALLOW_DEEP = 150
"""... and nesting they can, past `files.MAX_DEPTH`, which every later walk over the value would pay for."""
SECRET = "s3cretPW"


@dataclass(frozen=True)
class Fifo:
    """A named pipe that nobody writes to: reading it would block for ever."""


@dataclass(frozen=True)
class Sock:
    """A bound Unix socket."""


@dataclass(frozen=True)
class Link:
    """A symlink to ``target`` (``{tmp}`` allowed)."""

    target: str


Content = str | bytes | None | Fifo | Sock | Link


def cfg(old: str = "", new: str = "", *, extra: str = "") -> str:
    """BASE with ``old`` replaced by ``new`` (which must occur, so a typo here cannot make a case vacuous)."""
    assert old in BASE, old
    return (BASE.replace(old, new, 1) if old else BASE) + extra


def source(path: str) -> str:
    return cfg("limit: 2", f"source: '{{tmp}}/{path}'")


def nested(depth: int, open_: str = "[", close: str = "]", leaf: str = "1") -> str:
    return open_ * depth + leaf + close * depth


def case(
    id: str,
    args: list[str],
    code: int,
    fragment: str,
    *,
    files: dict[str, Content] | None = None,
    env: dict[str, str | None] | None = None,
    absent: str | None = None,
    marks: Any = (),
) -> Any:
    """One catalogue entry. ``{tmp}`` in args, env values and text files is the case's own folder and
    ``{redis}`` the test Redis's ``redis://host:port``, and None unsets a variable; a file whose content is None
    is created as an empty folder. ``absent``: text that must not appear anywhere on stderr (a password)."""
    return pytest.param(args, code, fragment, files or {}, env or {}, absent, id=id, marks=marks)


def enqueue(
    text: str | bytes | Fifo,
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


def score(content: Content, fragment: str, id: str) -> Any:
    return case(
        id, ["score", "humaneval", "{tmp}/samples.jsonl"], 2, fragment, files={"samples.jsonl": content}
    )


def import_eval(
    content: Content, fragment: str, id: str, *, code: int = 2, condition: str = "a", replicate: int = 0
) -> Any:
    args = [
        "import-eval",
        "shared",
        "{tmp}/report.json",
        "--condition",
        condition,
        "--replicate",
        str(replicate),
    ]
    return case(id, args, code, fragment, files={"report.json": content})


def settings(env: dict[str, str], fragment: str, id: str, *, code: int = 2, absent: str | None = None) -> Any:
    return case(id, ["results", "shared"], code, fragment, env=env, absent=absent)


def rows(*overrides: dict[str, Any]) -> str:
    """A .json dataset of ROW with each override applied to one row."""
    return json.dumps([{**ROW, "task_id": f"t/{i}", **o} for i, o in enumerate(overrides)])


def dataset(id: str, name: str, content: Content, fragment: str) -> Any:
    return enqueue(source(name), fragment, id, files={name: content})


def out(
    id: str, target: str, fragment: str, *, files: dict[str, Content] | None = None, fmt: str = "jsonl"
) -> Any:
    return case(id, ["export", "shared", "--format", fmt, "-o", target], 2, fragment, files=files)


def swebench(extra: str) -> str:
    return cfg("benchmark: humaneval, limit: 2", f"benchmark: swebench, limit: 2{extra}")


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
    import_eval(HARNESS, "experiment 'shared' has no condition 'zz'", "report-unknown-condition", code=4,
                condition="zz"),
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

    # YAML structures PyYAML accepts and Python cannot: keys that are lists or mappings, nesting past any parser.
    enqueue("? [a, b]\n: 1\n" + BASE, "exp.yaml:1: a key must be a plain value, not a list", "yaml-list-key"),
    enqueue("? {a: 1}\n: 1\n" + BASE, "exp.yaml:1: a key must be a plain value, not a mapping", "yaml-mapping-key"),
    enqueue(cfg("conditions: {a: {}}", "conditions: {[a]: {}}"), "exp.yaml:5: a key must be a plain value, not a list",
            "yaml-list-key-in-conditions"),
    enqueue(cfg("generation: {max_tokens: 32}", "generation: {max_tokens: 32, {x: 1}: 2}"),
            "a key must be a plain value, not a mapping", "yaml-mapping-key-in-generation"),
    enqueue(BASE + "x: " + nested(DEEP) + "\n", "exp.yaml: nested too deeply to read", "yaml-deep-lists"),
    enqueue(BASE + "x: " + nested(DEEP, "{a: ", "}") + "\n", "exp.yaml: nested too deeply to read",
            "yaml-deep-mappings"),
    enqueue(BASE + "x: " + nested(SHALLOW_DEEP) + "\n", "exp.yaml: nested more than 100 levels deep",
            "yaml-nested-past-the-limit"),
    enqueue(BASE + "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{n}: &{n} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, n in zip("abcdefgh", "bcdefghi", strict=True)), "holds more than 100,000 values", "yaml-billion-laughs"),
    enqueue(BASE + "x: !!python/object:os.system {}\n", "malformed YAML", "yaml-python-tag"),
    enqueue(BASE.encode() + b"x: a\x00b\n", "malformed YAML", "yaml-raw-nul-byte"),
    enqueue(cfg("name: bad", "name: [bad]"), "exp.yaml:1: name", "name-is-a-list"),
    enqueue(cfg("conditions: {a: {}}", "conditions: {1: {}}"), "conditions", "condition-name-is-a-number"),
    # Text Postgres cannot store or UTF-8 cannot encode, anywhere in the file.
    enqueue(cfg("generation: {max_tokens: 32}", 'generation: {max_tokens: 32, stop: ["a\\0b"]}'),
            "exp.yaml:4: generation.stop[0]: holds a NUL character", "stop-nul"),
    enqueue(cfg("generation: {max_tokens: 32}", 'generation: {max_tokens: 32, stop: ["\\ud800"]}'),
            "exp.yaml:4: generation.stop[0]: holds a lone surrogate (U+D800", "stop-surrogate"),
    enqueue(cfg("a: {}", 'a: {system_prompt: "be brief\\0"}'), "conditions.a.system_prompt: holds a NUL character",
            "system-prompt-nul"),
    enqueue(cfg("a: {}", 'a: {system_prompt: "\\udfff be brief"}'), "conditions.a.system_prompt: holds a lone surrogate",
            "system-prompt-surrogate"),
    enqueue(cfg("a: {}", 'a: {generation: {stop: ["\\0"]}}'), "conditions.a.generation.stop[0]: holds a NUL",
            "condition-stop-nul"),
    enqueue(cfg("n_ctx: 2048", 'n_ctx: 2048, name: "m\\0"'), "model.name: holds a NUL character", "model-name-nul"),
    enqueue(cfg("conditions: {a: {}}", 'conditions: {"a\\0": {}}'), "the key holds a NUL character", "condition-key-nul"),
    enqueue(cfg("limit: 2", 'instance_ids: ["\\ud83d"]'), "dataset.instance_ids[0]: holds a lone surrogate",
            "instance-id-surrogate"),
    # The dataset's rows: the same rule, each row and field named; nesting; code in entry_point.
    dataset("dataset-prompt-nul", "rows.json", rows({"prompt": "def f():\u0000"}),
            "row 0 (instance 't/0'): field prompt: holds a NUL character"),
    dataset("dataset-test-surrogate", "rows.json", rows({}, {"test": "def check(c): '\ud800'"}),
            "row 1 (instance 't/1'): field test: holds a lone surrogate"),
    dataset("dataset-extra-field-nul", "rows.json", rows({"notes": ["ok", "\u0000"]}), "field notes[1]: holds a NUL"),
    dataset("dataset-jsonl-prompt-nul", "rows.jsonl", json.dumps({**ROW, "prompt": "\u0000"}) + "\n",
            "rows.jsonl:1: prompt: holds a NUL character"),
    dataset("dataset-jsonl-task-id-surrogate", "rows.jsonl", json.dumps(ROW) + "\n" + json.dumps({**ROW, "task_id": "\udcff"}),
            "rows.jsonl:2: task_id: holds a lone surrogate"),
    dataset("dataset-json-deep", "rows.json", nested(DEEP), "rows.json: not valid JSON: nested more than 100 levels"),
    dataset("dataset-json-past-the-limit", "rows.json", nested(SHALLOW_DEEP), "nested more than 100 levels deep"),
    dataset("dataset-jsonl-deep", "rows.jsonl", nested(DEEP, '{"a": ', "}"), "rows.jsonl:1: not JSON: nested more than"),
    dataset("dataset-row-deep", "rows.json", rows({"meta": json.loads(nested(SHALLOW_DEEP))}), "nested more than 100"),
    dataset("entry-point-injection", "rows.json", rows({"entry_point": "f; import os"}),
            "field 'entry_point' must be a Python function name, got 'f; import os'"),
    dataset("entry-point-keyword", "rows.json", rows({"entry_point": "import"}), "must be a Python function name"),
    dataset("entry-point-call", "rows.json", rows({"entry_point": "f()"}), "must be a Python function name"),
    dataset("entry-point-newline", "rows.json", rows({"entry_point": "f\nimport os"}), "must be a Python function name"),
    dataset("entry-point-dotted", "rows.json", rows({"entry_point": "os.system"}), "must be a Python function name"),
    dataset("dataset-field-not-text", "rows.json", rows({"prompt": ["def f():"]}), "field 'prompt' must be text"),
    dataset("dataset-duplicate-ids", "rows.json", json.dumps([ROW, ROW]), "duplicate instance id 't/0'"),
    # Sources that are no regular file: never hashed, read or waited on.
    enqueue(cfg("limit: 2", "source: /dev/zero"), "/dev/zero: unsupported dataset file type ''", "source-dev-zero"),
    dataset("source-link-to-dev-zero", "rows.json", Link("/dev/zero"), "rows.json: is a character device"),
    dataset("source-fifo", "rows.jsonl", Fifo(), "rows.jsonl: is a FIFO, not a regular file"),
    dataset("source-socket", "rows.json", Sock(), "rows.json: is a socket, not a regular file"),
    dataset("source-parquet-fifo", "rows.parquet", Fifo(), "rows.parquet: is a FIFO"),
    enqueue(swebench(", categories_file: /dev/zero"), "categories_file /dev/zero: is a character device",
            "categories-file-dev-zero"),
    enqueue(swebench(", categories_file: '{tmp}/c.json'"), "categories_file", "categories-file-deep",
            files={"c.json": nested(DEEP, '{"a": ', "}")}),
    enqueue(swebench(", categories_file: '{tmp}/c.json'"), "x: holds a NUL character", "categories-file-nul",
            files={"c.json": json.dumps({"x": "lo\u0000gic"})}),
    case("config-dev-zero", ["enqueue", "/dev/zero"], 2, "/dev/zero: is a character device"),
    case("config-dev-null", ["enqueue", "/dev/null"], 2, "/dev/null: is a character device"),
    case("config-fifo", ["enqueue", "{tmp}/exp.yaml"], 2, "exp.yaml: is a FIFO", files={"exp.yaml": Fifo()}),
    case("config-dangling-link", ["enqueue", "{tmp}/exp.yaml"], 2, "experiment file not found",
         files={"exp.yaml": Link("{tmp}/nowhere.yaml")}),
    enqueue(cfg("limit: 2", "source: '~nosuchuser/rows.json'"), "cannot expand '~nosuchuser/rows.json'",
            "source-unknown-user-home"),
    enqueue(cfg("limit: 2", "source: ''"), "exp.yaml:2: dataset.source: is empty", "source-empty"),
    enqueue(cfg("limit: 2", "source: 'hub:'"), "dataset.source: hub: needs a dataset name", "source-hub-no-name"),
    enqueue(cfg("a: {}", "a: {ordering: relaxed, max_in_flight: 99999999999999999999}"),
            "conditions.a.max_in_flight: 99999999999999999999 is above the limit", "max-in-flight-huge"),
    # Model references that name no file (they would publish to a queue such as `swarmq.hf_`).
    enqueue(cfg("path: models/stand-in.gguf", "path: 'hf:'"), "model.path: model 'hf:': expected hf:ORG/REPO/FILE.gguf",
            "hf-empty"),
    enqueue(cfg("path: models/stand-in.gguf", "path: 'hf:org'"), "expected hf:ORG/REPO/FILE.gguf", "hf-org-only"),
    enqueue(cfg("path: models/stand-in.gguf", "path: 'hf:org/repo'"), "expected hf:ORG/REPO/FILE.gguf", "hf-no-file"),
    enqueue(cfg("path: models/stand-in.gguf", "path: 'hf:org/repo/model.bin'"), "expected hf:ORG/REPO/FILE.gguf",
            "hf-not-gguf"),
    enqueue(cfg("path: models/stand-in.gguf", "path: 'hf:org//m.gguf'"), "expected hf:ORG/REPO/FILE.gguf",
            "hf-empty-part"),
    enqueue(cfg("path: models/stand-in.gguf", "path: 'hf:@main'"), "expected hf:ORG/REPO/FILE.gguf", "hf-only-revision"),
    enqueue(cfg("path: models/stand-in.gguf", "path: models/"), "'models/' names no model file", "model-path-folder"),
    enqueue(cfg("path: models/stand-in.gguf", "path: ''"), "names no model file", "model-path-empty"),
    enqueue(cfg("a: {}", "a: {model: {path: 'hf:x/y'}}"), "conditions.a.model.path", "condition-hf-malformed"),
    enqueue(cfg("model: {path: models/stand-in.gguf, n_ctx: 2048}", "models: [{path: 'hf:x'}]"),
            "expected hf:ORG/REPO/FILE.gguf", "models-list-hf-malformed"),
    # Settings: non-finite, negative and huge values, malformed URLs; passwords never shown.
    settings({"SWARMQ_LEASE_SECONDS": "inf"}, "SWARMQ_LEASE_SECONDS: Input should be a finite number", "lease-inf"),
    settings({"SWARMQ_IDLE_POLL_SECONDS": "inf"}, "SWARMQ_IDLE_POLL_SECONDS: Input should be a finite", "idle-poll-inf"),
    settings({"SWARMQ_MAX_ATTEMPTS": "1e20"}, "SWARMQ_MAX_ATTEMPTS", "max-attempts-1e20"),
    settings({"SWARMQ_MAX_ATTEMPTS": str(2**70)}, "SWARMQ_MAX_ATTEMPTS: Input should be less than or equal to 1000",
             "max-attempts-2-70"),
    settings({"SWARMQ_MAX_ATTEMPTS": "-1"}, "SWARMQ_MAX_ATTEMPTS", "max-attempts-negative"),
    settings({"SWARMQ_WORKER_RECORD_SECONDS": "inf"}, "SWARMQ_WORKER_RECORD_SECONDS: Input should be a finite",
             "worker-record-inf"),
    settings({"SWARMQ_WORKER_RECORD_SECONDS": "1e30"}, "SWARMQ_WORKER_RECORD_SECONDS: Input should be less than",
             "worker-record-huge"),
    settings({"SWARMQ_HEARTBEAT_SECONDS": "nan"}, "SWARMQ_HEARTBEAT_SECONDS: Input should be a finite", "heartbeat-nan"),
    settings({"SWARMQ_REAPER_SECONDS": "-inf"}, "SWARMQ_REAPER_SECONDS", "reaper-minus-inf"),
    settings({"SWARMQ_OUTAGE_SECONDS": "-1"}, "SWARMQ_OUTAGE_SECONDS", "outage-negative"),
    settings({"SWARMQ_SHUTDOWN_GRACE_SECONDS": "1e300"}, "SWARMQ_SHUTDOWN_GRACE_SECONDS: Input should be less",
             "grace-huge"),
    settings({"SWARMQ_STUCK_SECONDS": "NaN"}, "SWARMQ_STUCK_SECONDS", "stuck-nan"),
    settings({"SWARMQ_SUPERVISOR_MARGIN_SECONDS": "Infinity"}, "SWARMQ_SUPERVISOR_MARGIN_SECONDS",
             "supervisor-margin-inf"),
    settings({"SWARMQ_EMBEDDED": "maybe"}, "SWARMQ_EMBEDDED", "embedded-not-a-bool"),
    case("home-is-a-device", ["results", "shared"], 2, "SWARMQ_HOME: /dev/null is not a folder",
         env={"SWARMQ_HOME": "/dev/null", "SWARMQ_DATABASE_URL": None, "SWARMQ_REDIS_URL": None}),
    case("home-is-a-file", ["results", "shared"], 2, "f.txt is not a folder", files={"f.txt": "x"},
         env={"SWARMQ_HOME": "{tmp}/f.txt", "SWARMQ_DATABASE_URL": None, "SWARMQ_REDIS_URL": None}),
    case("home-under-a-file", ["results", "shared"], 2, "cannot be created (Not a directory)", files={"f.txt": "x"},
         env={"SWARMQ_HOME": "{tmp}/f.txt/home", "SWARMQ_DATABASE_URL": None, "SWARMQ_REDIS_URL": None}),
    settings({"SWARMQ_DATABASE_URL": "postgresql://u@127.0.0.1:port/db"}, "SWARMQ_DATABASE_URL: 'postgresql://u@127.0.0.1:port/db' is malformed",
             "db-url-port-not-a-number"),
    settings({"SWARMQ_DATABASE_URL": "postgresql://u@127.0.0.1:99999/db"}, "is malformed", "db-url-port-out-of-range"),
    settings({"SWARMQ_DATABASE_URL": "postgresql://u@[::1/db"}, "is malformed", "db-url-bad-ipv6"),
    settings({"SWARMQ_DATABASE_URL": f"mysql://u:{SECRET}@h/db"}, "'mysql://u:***@h/db' is not a Postgres URL",
             "db-url-not-postgres-masked", absent=SECRET),
    settings({"SWARMQ_DATABASE_URL": f"postgresql://u:{SECRET}@h:nope/db"}, "'postgresql://u:***@h:nope/db' is malformed",
             "db-url-malformed-masked", absent=SECRET),
    settings({"SWARMQ_DATABASE_URL": f"postgresql://swarmq:{SECRET}@127.0.0.1:1/db"},
             "cannot reach Postgres at postgresql+psycopg://swarmq:***@127.0.0.1:1/db", "db-unreachable-masked",
             code=3, absent=SECRET),
    settings({"SWARMQ_DATABASE_URL": f"postgresql://postgres:{SECRET}@127.0.0.1:5432/x?foo=bar"},
             'SWARMQ_DATABASE_URL: postgresql+psycopg://postgres:***@127.0.0.1:5432/x?foo=bar: invalid connection option "foo"',
             "db-url-unknown-option", absent=SECRET),
    settings({"SWARMQ_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/x?sslmode=bogus"},
             'invalid sslmode value: "bogus"', "db-url-bad-sslmode", code=3),
    settings({"SWARMQ_REDIS_URL": f"redis://:{SECRET}@127.0.0.1:6379/0?socket_timeout=soon"},
             "SWARMQ_REDIS_URL: redis://:***@127.0.0.1:6379/0?socket_timeout=soon: ", "redis-url-bad-option",
             absent=SECRET),
    settings({"SWARMQ_REDIS_URL": "{redis}/abc"}, "the database index 'abc' is not a number", "redis-db-not-a-number"),
    settings({"SWARMQ_REDIS_URL": "{redis}/-1"}, "the database index '-1' is not a number", "redis-db-negative"),
    settings({"SWARMQ_REDIS_URL": "{redis}/99999999999"}, "the database index", "redis-db-huge"),
    settings({"SWARMQ_REDIS_URL": "{redis}/9999"}, "DB index is out of range", "redis-db-out-of-range", code=3),
    settings({"SWARMQ_REDIS_URL": "redis://127.0.0.1:notaport/0"}, "is malformed", "redis-url-port-not-a-number"),
    settings({"SWARMQ_REDIS_URL": ""}, "SWARMQ_REDIS_URL: '' is not a Redis URL", "redis-url-empty"),
    settings({"SWARMQ_REDIS_URL": f"redis://:{SECRET}@127.0.0.1:1/0"}, "cannot reach Redis at redis://:***@127.0.0.1:1/0",
             "redis-unreachable-masked", code=3, absent=SECRET),
    settings({"SWARMQ_REDIS_URL": f"redis://:{SECRET}@127.0.0.1:x/0"}, "'redis://:***@127.0.0.1:x/0' is malformed",
             "redis-url-malformed-masked", absent=SECRET),
    settings({"SWARMQ_REDIS_URL": f"redis://127.0.0.1:1/0?password={SECRET}"}, "password=***", "redis-password-param-masked",
             code=3, absent=SECRET),
    settings({"SWARMQ_REDIS_URL": f"http://:{SECRET}@h/0"}, "'http://:***@h/0' is not a Redis URL",
             "redis-url-not-redis-masked", absent=SECRET),
    # Unknown selectors: an error (exit 4), never an empty answer.
    case("export-unknown-condition", ["export", "shared", "--condition", "zz", "-o", "{tmp}/o.jsonl"], 4,
         "--condition: experiment 'shared' has no condition 'zz' (a)"),
    case("export-unknown-replicate", ["export", "shared", "--replicate", "5", "-o", "{tmp}/o.jsonl"], 4,
         "--replicate: experiment 'shared' has no replicate 5 (replicates 0 to 0)"),
    case("export-negative-replicate", ["export", "shared", "--replicate", "-1", "-o", "{tmp}/o.jsonl"], 4,
         "has no replicate -1"),
    case("export-huge-replicate", ["export", "shared", "--replicate", str(2**70), "-o", "{tmp}/o.jsonl"], 4,
         "has no replicate"),
    case("export-humaneval-unknown-condition",
         ["export", "shared", "--format", "humaneval", "--condition", "b", "-o", "{tmp}/o.jsonl"], 4,
         "has no condition 'b'"),
    case("state-show-unknown-condition", ["state", "show", "shared", "--condition", "zz"], 4,
         "has no condition 'zz'"),
    case("state-show-unknown-replicate", ["state", "show", "shared", "--replicate", "3"], 4, "has no replicate 3"),
    case("state-show-json-unknown-condition", ["state", "show", "shared", "--condition", "A", "--format", "json"], 4,
         "has no condition 'A'"),
    import_eval(HARNESS, "--replicate: experiment 'shared' has no replicate 3", "report-unknown-replicate", code=4,
                replicate=3),
    # Arguments that are not UTF-8 (Python decodes such bytes to lone surrogates) would reach Postgres.
    case("results-name-not-utf8", ["results", "\udcff"], 2, "argument 2 ('\\udcff') is not UTF-8 text"),
    case("status-name-not-utf8", ["status", "a\udcffb"], 2, "argument 2 ('a\\udcffb') is not UTF-8 text"),
    case("delete-name-not-utf8", ["delete", "\udcfe", "--yes"], 2, "is not UTF-8 text"),
    case("pause-name-not-utf8", ["pause", "\udcff"], 2, "is not UTF-8 text"),
    case("export-name-not-utf8", ["export", "\udcff", "-o", "{tmp}/o.jsonl"], 2, "is not UTF-8 text"),
    case("state-condition-not-utf8", ["state", "show", "shared", "--condition", "\udce9"], 2,
         "argument 5 ('\\udce9') is not UTF-8 text"),
    case("enqueue-name-not-utf8", ["enqueue", "{tmp}/exp.yaml", "--name", "caf\udce9"], 2, "is not UTF-8 text",
         files={"exp.yaml": BASE}),
    case("replay-huge-job-id", ["replay", str(2**70)], 4, f"no job with id {2**70}"),
    case("replay-negative-job-id", ["replay", "--", "-3"], 4, "no job with id -3"),
    case("limit-huge", ["enqueue", "{tmp}/exp.yaml", "--limit", str(10**20)], 2, "--limit: 100000000000000000000 is above",
         files={"exp.yaml": BASE}),
    # Report and sample files: nesting, text, types, files that are no regular file.
    import_eval(nested(DEEP), "report.json: not JSON (nested more than 100 levels deep", "report-deep"),
    import_eval(json.dumps({"resolved_ids": json.loads(nested(SHALLOW_DEEP))}), "nested more than 100 levels",
                "report-nested-past-the-limit"),
    import_eval(json.dumps({"resolved_ids": ["x\u0000"]}), "resolved_ids[0]: holds a NUL character", "report-id-nul"),
    import_eval(json.dumps({"resolved_ids": ["\udc80"]}), "resolved_ids[0]: holds a lone surrogate", "report-id-surrogate"),
    import_eval(json.dumps({"resolved_ids": 5}), "resolved_ids must be a list of instance ids", "report-ids-not-a-list"),
    import_eval(json.dumps({"resolved_ids": [1, 2]}), "resolved_ids must be a list of instance ids", "report-ids-ints"),
    import_eval(json.dumps({"unresolved_ids": {"a": 1}}), "unresolved_ids must be a list", "report-ids-mapping"),
    import_eval(Fifo(), "report.json: is a FIFO", "report-fifo"),
    case("report-dev-zero", ["import-eval", "shared", "/dev/zero", "--condition", "a"], 2, "/dev/zero: is a character"),
    score(nested(DEEP), "samples.jsonl:1: not JSON: nested more than 100 levels deep", "samples-deep"),
    score(json.dumps({"task_id": "HumanEval/0", "completion": "    return 1\u0000"}),
          "samples.jsonl:1: completion: holds a NUL character", "samples-completion-nul"),
    score(json.dumps({"task_id": "HumanEval/0", "completion": "    return '\ud800'"}),
          "samples.jsonl:1: completion: holds a lone surrogate", "samples-completion-surrogate"),
    score(json.dumps({"task_id": "HumanEval/0\u0000", "completion": ""}), "task_id: holds a NUL", "samples-task-id-nul"),
    score(json.dumps({"task_id": "HumanEval/0", "completion": "", "\ud800": 1}), "the key holds a lone surrogate",
          "samples-key-surrogate"),
    score(Fifo(), "samples.jsonl: is a FIFO", "samples-fifo"),
    case("samples-dev-zero", ["score", "humaneval", "/dev/zero"], 2, "/dev/zero: is a character device"),
    # Output paths that cannot take the file: one line, nothing left behind (no temporary file either).
    out("export-to-a-folder", "{tmp}", "is a directory; give a file path"),
    out("export-missing-folder", "{tmp}/missing/o.jsonl", "/missing does not exist"),
    out("export-parent-is-a-file", "{tmp}/f.txt/o.jsonl", "f.txt is not a folder", files={"f.txt": "x"}),
    out("export-dangling-symlink", "{tmp}/o.jsonl", "is a symlink to a missing file",
        files={"o.jsonl": Link("{tmp}/gone/o.jsonl")}),
    out("export-to-a-socket", "{tmp}/o.sock", "is a socket; give a file path", files={"o.sock": Sock()}),
    out("export-csv-to-a-folder", "{tmp}/d", "is a directory", files={"d": None}, fmt="csv"),
    out("export-parquet-missing-folder", "{tmp}/no/o.parquet", "does not exist", fmt="parquet"),
    out("export-into-proc", "/proc/swarmq-export.jsonl", "cannot write /proc/swarmq-export.jsonl"),
    case("plot-to-a-file", ["plot", "shared", "-o", "{tmp}/f.txt"], 2, "f.txt is not a folder", files={"f.txt": "x"}),
    case("plot-under-a-file", ["plot", "shared", "-o", "{tmp}/f.txt/plots"], 2, "cannot create the folder",
         files={"f.txt": "x"}),
    case("plot-to-dev-null", ["plot", "shared", "-o", "/dev/null"], 2, "/dev/null is not a folder"),
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


def make_files(folder: Path, files: dict[str, Content]) -> list[socket.socket]:
    """Create a case's files; returns the sockets to close afterwards."""
    sockets = []
    for name, content in files.items():
        path = folder / name
        if content is None:
            path.mkdir()
        elif isinstance(content, Fifo):
            os.mkfifo(path)
        elif isinstance(content, Sock):
            sock = socket.socket(socket.AF_UNIX)
            sock.bind(str(path))
            sockets.append(sock)
        elif isinstance(content, Link):
            path.symlink_to(content.target.replace("{tmp}", str(folder)))
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            # surrogatepass: a case may hold a lone surrogate on purpose (YAML's "\ud800" is escaped text).
            path.write_bytes(content.replace("{tmp}", str(folder)).encode("utf-8", "surrogatepass"))
    return sockets


def one_error(r: Any) -> str:
    """The one `swarmq: error:` line of a refused command, after checking there is no traceback."""
    assert "Traceback" not in r.stderr, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("swarmq: error: ")]
    assert len(errors) == 1, r.stderr
    return errors[0]


@pytest.mark.parametrize(("args", "code", "fragment", "files", "env", "absent"), CATALOGUE)
def test_bad_input_is_one_line_and_writes_nothing(
    tmp_path: Path,
    shared_env: dict[str, str],
    redis_url: str,
    database_url: str,
    args: list[str],
    code: int,
    fragment: str,
    files: dict[str, Content],
    env: dict[str, str | None],
    absent: str | None,
) -> None:
    sockets = make_files(tmp_path, files)
    redis_base = redis_url.rsplit("/", 1)[0]
    full_env = {**shared_env, **env}  # None: unset
    run_env = {
        k: v.replace("{tmp}", str(tmp_path)).replace("{redis}", redis_base)
        for k, v in full_env.items()
        if v is not None
    }
    before_rows, before_files = counts(database_url), tree(tmp_path)
    try:
        r = swarmq(*(a.replace("{tmp}", str(tmp_path)) for a in args), env=run_env, timeout=120)
    finally:
        for sock in sockets:
            sock.close()
    line = one_error(r)
    assert fragment in line
    assert r.returncode == code, r.stderr
    if absent is not None:
        assert absent not in r.stderr + r.stdout
    assert counts(database_url) == before_rows
    assert tree(tmp_path) == before_files


def test_the_catalogue_holds_every_category() -> None:
    """Issue 26's bar: at least 150 bad inputs, each with a distinct id."""
    ids = [p.id for p in CATALOGUE]
    assert len(ids) >= 150 and len(set(ids)) == len(ids)


def lines_of(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def test_export_writes_in_place_to_a_fifo_and_through_a_symlink(
    tmp_path: Path, shared_env: dict[str, str]
) -> None:
    """A FIFO (a pipe, `>(gzip)`) is written in place, never replaced by a file; a symlink keeps pointing at its
    target, which gets the rows."""
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(pipe.read_bytes()), daemon=True)
    reader.start()
    r = swarmq("export", "shared", "-o", str(pipe), env=shared_env, timeout=120)
    assert r.returncode == 0, r.stderr
    reader.join(timeout=60)
    assert stat.S_ISFIFO(pipe.lstat().st_mode)
    assert len(lines_of(got[0].decode())) == 2
    assert "wrote 2 rows" in r.stderr and r.stdout == ""  # stdout stays free for `-o /dev/stdout`

    real, link = tmp_path / "real.jsonl", tmp_path / "link.jsonl"
    real.write_text("old\n")
    link.symlink_to(real)
    r = swarmq("export", "shared", "-o", str(link), env=shared_env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert len(lines_of(real.read_text())) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "link.jsonl",
        "pipe",
        "real.jsonl",
    ]  # no temporary left


def test_export_writes_in_place_to_a_character_device(tmp_path: Path, shared_env: dict[str, str]) -> None:
    """`-o /dev/null` as root must never replace the device with a file: checked on a private node with
    /dev/null's numbers (the machine's own /dev/null is not put at risk by a regression)."""
    null = tmp_path / "null"
    try:
        os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("no permission to create a device node here")
    r = swarmq("export", "shared", "--format", "csv", "-o", str(null), env=shared_env, timeout=120)
    assert r.returncode == 0, r.stderr
    st = null.lstat()
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    r = swarmq("export", "shared", "-o", "/dev/stdout", env=shared_env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert len(lines_of(r.stdout)) == 2  # a pipe behind a symlink: written in place


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_export_honours_the_umask_and_keeps_a_replaced_file_mode(
    tmp_path: Path, shared_env: dict[str, str], umask: int, mode: int
) -> None:
    old = os.umask(umask)
    try:
        new = tmp_path / "new.jsonl"
        assert swarmq("export", "shared", "-o", str(new), env=shared_env, timeout=120).returncode == 0
        kept = tmp_path / "kept.jsonl"
        kept.write_text("old\n")
        kept.chmod(0o640)
        assert swarmq("export", "shared", "-o", str(kept), env=shared_env, timeout=120).returncode == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(new.stat().st_mode) == mode
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640 and len(lines_of(kept.read_text())) == 2


def test_export_without_o_names_the_file_after_its_format(tmp_path: Path, shared_env: dict[str, str]) -> None:
    import subprocess
    import sys

    from tests.conftest import ROOT

    env = {**shared_env, "PYTHONPATH": str(ROOT)}
    for fmt, name in (
        ("csv", "outcomes.csv"),
        ("jsonl", "outcomes.jsonl"),
        ("humaneval", "outcomes.humaneval.jsonl"),
    ):
        r = subprocess.run(
            [sys.executable, "-m", "swarmq", "export", "shared", "--format", fmt],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, r.stderr
        assert f"to {name}" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "outcomes.csv",
        "outcomes.humaneval.jsonl",
        "outcomes.jsonl",
    ]
    assert (tmp_path / "outcomes.csv").read_text().startswith("job_id,")
