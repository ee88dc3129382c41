"""docker-compose.yml, Dockerfile and .dockerignore, checked statically (no Docker engine in CI): against the
Compose Specification's JSON schema (vendored in tests/data, see its README), and for what the file promises:
passwords from .env and never on a command line, least privilege (a `swarmq` role owns its database, services
are no superusers, Flower asks for a password), no embedded fallback, the sandbox's capability, a worker
healthcheck."""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import shlex
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
SCHEMA = ROOT / "tests" / "data" / "compose-spec.json"
PASSWORDS = {
    "POSTGRES_PASSWORD": "pg0secret",
    "SWARMQ_DB_PASSWORD": "swarmq0secret",
    "REDIS_PASSWORD": "redis0secret",
    "FLOWER_PASSWORD": "flower0secret",
}
"""What a user puts in .env; the interpolated file must carry exactly these."""
INIT_SCRIPT = ROOT / "compose" / "postgres-init.sh"
DB_URL = "postgresql+psycopg://swarmq:swarmq0secret@postgres:5432/swarmq"
REDIS_URL = "redis://:redis0secret@redis:6379/0"
_VAR = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\})")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR:?error} (and $$) over every string of the file; an unset or
    empty required variable raises ValueError with Compose's message."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if name is None:
            return "$"
        have = env.get(name)
        empty = have is None or (have == "" and op is not None and op.startswith(":"))
        if op and op.endswith("?") and empty:
            raise ValueError(f"required variable {name} is missing a value: {arg}")
        if op and op.endswith("-") and empty:
            return arg
        return have or ""

    return _VAR.sub(one, value)


def env_file(path: Path) -> dict[str, str]:
    pairs = (
        line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#")
    )
    return {k.strip(): v.strip() for k, v in pairs}


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())  # resolves the anchors and `<<` merges like Compose does
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def compose(raw: dict[str, Any]) -> dict[str, Any]:
    """The file as Compose runs it, with the example env file filled in as the user is told to."""
    data: dict[str, Any] = interpolate(raw, {**env_file(ENV_EXAMPLE), **PASSWORDS})
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


@pytest.fixture(scope="module")
def workers(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found = {name: s for name, s in services.items() if name.startswith("worker-")}
    assert found, "no worker service"
    return found


def _devices(service: dict[str, Any]) -> list[dict[str, Any]]:
    return list(service.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", []))


def _command(service: dict[str, Any]) -> list[str]:
    cmd = service["command"]
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    return {str(k): str(v) for k, v in env.items()}


def test_required_services(services: dict[str, dict[str, Any]]) -> None:
    assert {
        "postgres",
        "redis",
        "migrate",
        "worker-gpu0",
        "worker-gpu1",
        "worker-gpu2",
        "worker-gpu3",
    } <= set(services)


def test_compose_file_matches_the_compose_spec_schema(raw: dict[str, Any], compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    for doc in (raw, compose):
        errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]
        assert errors == []
    # The check has teeth: a misspelt key and a wrong type are schema errors.
    broken = copy.deepcopy(compose)
    broken["services"]["worker-gpu0"]["healthcheck"]["tset"] = ["CMD", "true"]
    broken["services"]["worker-gpu1"]["cap_add"] = "SYS_ADMIN"
    assert {e.absolute_path[-1] for e in validator.iter_errors(broken)} >= {"healthcheck", "cap_add"}


def test_passwords_come_from_the_env_file(raw: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    example = env_file(ENV_EXAMPLE)
    assert set(example) == set(PASSWORDS) and not any(example.values()), ".env.example ships no password"
    # As shipped, Compose refuses to start and names the missing password; so it does for each one left out.
    with pytest.raises(ValueError, match=r"required variable [A-Z_]+_PASSWORD is missing a value: set "):
        interpolate(raw, example)
    for name in PASSWORDS:
        with pytest.raises(
            ValueError, match=f"required variable {name} is missing a value: set {name} in .env"
        ):
            interpolate(raw, {**example, **PASSWORDS, name: ""})
    # Filled in, every service carries the .env passwords and no other.
    pg_env = services["postgres"]["environment"]
    assert pg_env["POSTGRES_PASSWORD"] == PASSWORDS["POSTGRES_PASSWORD"]
    assert pg_env["SWARMQ_DB_PASSWORD"] == PASSWORDS["SWARMQ_DB_PASSWORD"]  # for the init script
    assert services["redis"]["environment"]["REDIS_PASSWORD"] == PASSWORDS["REDIS_PASSWORD"]
    assert services["redis"]["environment"]["REDISCLI_AUTH"] == PASSWORDS["REDIS_PASSWORD"]  # its healthcheck
    assert _env(services["flower"])["CELERY_BROKER_URL"] == REDIS_URL
    text = COMPOSE.read_text()
    assert "postgres:postgres@" not in text and not re.search(r"PASSWORD:\s*[\"']?\w", text), (
        "a literal password"
    )
    for ignore in (".gitignore", ".dockerignore"):
        assert ".env" in (ROOT / ignore).read_text().splitlines(), (
            f"{ignore} must keep .env (the secrets) out"
        )


def test_no_password_on_any_command_line(services: dict[str, dict[str, Any]]) -> None:
    """`ps` and `docker inspect` show a process's arguments to anyone on the host: passwords travel in the
    environment. Redis reads its password from a file that a shell builtin writes (no `--requirepass`)."""
    for name, service in services.items():
        words = " ".join(_command(service)) if "command" in service else ""
        for secret in PASSWORDS.values():
            assert secret not in words, f"{name}: a password on the command line"
        assert "--requirepass" not in words and "--broker" not in words and "--basic_auth" not in words, name
    redis = " ".join(_command(services["redis"]))
    assert "printf 'requirepass" in redis and '"$REDIS_PASSWORD"' in redis and "umask 077" in redis
    assert re.search(r"exec redis-server /tmp/auth\.conf\b", redis)


def test_least_privilege_roles(services: dict[str, dict[str, Any]]) -> None:
    """Postgres's superuser belongs to its container; every swarmq service logs in as the `swarmq` role, which
    the init script creates without privileges beyond owning its database."""
    for name, service in services.items():
        if service.get("image") == "swarmq:local":
            url = _env(service)["SWARMQ_DATABASE_URL"]
            assert url == DB_URL and "postgres:pg0secret" not in url, name
            assert PASSWORDS["POSTGRES_PASSWORD"] not in json.dumps(service), f"{name} holds the superuser's"
    pg = services["postgres"]
    assert "./compose/postgres-init.sh:/docker-entrypoint-initdb.d/10-swarmq-role.sh:ro" in pg["volumes"]
    assert "POSTGRES_DB" not in pg["environment"], "the image would create swarmq owned by the superuser"
    script = INIT_SCRIPT.read_text()
    assert script.startswith("#!/bin/sh\n") and INIT_SCRIPT.stat().st_mode & 0o111
    role = re.search(r"^CREATE ROLE swarmq (.+);$", script, re.M)
    assert role, "the init script creates the swarmq role"
    assert {"LOGIN", "NOSUPERUSER", "NOCREATEDB", "NOCREATEROLE", "NOREPLICATION"} <= set(
        role.group(1).split()
    )
    assert "PASSWORD :'pw'" in role.group(1) and "\\getenv pw SWARMQ_DB_PASSWORD" in script
    assert re.search(r"^CREATE DATABASE swarmq OWNER swarmq;$", script, re.M)
    assert "<<'SQL'" in script, "a quoted here-document: the shell expands nothing in the SQL"
    assert "pg_isready -h 127.0.0.1 -U swarmq -d swarmq" in " ".join(pg["healthcheck"]["test"])


def test_flower_asks_for_a_password(services: dict[str, dict[str, Any]]) -> None:
    env = _env(services["flower"])
    assert env["FLOWER_BASIC_AUTH"] == f"swarmq:{PASSWORDS['FLOWER_PASSWORD']}"
    assert services["flower"]["ports"] == ["127.0.0.1:5555:5555"]


def test_no_embedded_fallback_in_containers(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if service.get("image") == "swarmq:local":
            assert _env(service)["SWARMQ_EMBEDDED"] == "0", name


def test_sandbox_can_isolate_inside_worker_containers(services: dict[str, dict[str, Any]]) -> None:
    """The sandbox unshares network/mount/IPC/PID namespaces and mounts tmpfs and /proc: CAP_SYS_ADMIN, and no
    AppArmor profile that denies mount. Nothing more: not privileged, seccomp left on."""
    sandbox = ROOT / "swarmq" / "benchmarks" / "sandbox" / "namespaces.py"
    assert "_libc.unshare(" in sandbox.read_text() and "_libc.mount(" in sandbox.read_text()
    for name, service in services.items():
        if not (name.startswith("worker-") or name == "cli"):  # cli: `swarmq score` runs the sandbox too
            continue
        assert service["cap_add"] == ["SYS_ADMIN"], name
        opts = service["security_opt"]
        assert "apparmor=unconfined" in opts and "no-new-privileges:true" in opts, name
        assert not any(o.startswith("seccomp") for o in opts) and not service.get("privileged"), name
    assert "cap_add" not in services["migrate"] and "cap_add" not in services["postgres"]


def test_worker_healthcheck_reads_its_heartbeat(workers: dict[str, dict[str, Any]]) -> None:
    for name, w in workers.items():
        check = w["healthcheck"]
        assert check["test"] == ["CMD", "python", "-m", "swarmq.worker.health"], name
        assert check["start_period"] == "10m", f"{name}: the first beat follows the model load"
    assert importlib.util.find_spec("swarmq.worker.health") is not None


def test_postgres(compose: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    pg = services["postgres"]
    assert pg["image"] == "postgres:16"
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    volume = pg["volumes"][0].split(":")[0]
    assert volume in compose["volumes"], "postgres data must be on a named volume"


def test_redis_appendonly(compose: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    redis = services["redis"]
    assert redis["image"].startswith("redis:7")
    cmd = " ".join(_command(redis))
    assert re.search(r"exec redis-server \S+ --appendonly yes$", cmd)
    assert redis["volumes"][0].split(":")[0] in compose["volumes"]
    assert redis["volumes"][0].split(":")[1] == "/data"  # where redis:7 writes its append-only file


def test_migrate_is_one_shot_after_healthy_postgres(services: dict[str, dict[str, Any]]) -> None:
    migrate = services["migrate"]
    assert _command(migrate) == ["db", "upgrade"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate.get("restart", "no") == "no"
    assert _env(migrate)["SWARMQ_DATABASE_URL"] == DB_URL


def test_workers(workers: dict[str, dict[str, Any]]) -> None:
    for name, w in workers.items():
        cmd = _command(w)
        assert cmd[0] == "worker", name
        assert "./models:/app/models:ro" in w["volumes"], name
        env = _env(w)
        assert (env["SWARMQ_DATABASE_URL"], env["SWARMQ_REDIS_URL"]) == (DB_URL, REDIS_URL), name
        assert w["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
        assert w["restart"] in ("unless-stopped", "always", "on-failure"), name
        [device] = _devices(w)
        assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"], name
        assert w["image"] == "swarmq:local"


def test_worker_gpu_indices_are_consistent(workers: dict[str, dict[str, Any]]) -> None:
    """worker-gpuN reserves host GPU N; inside the container it is the only GPU, so `--gpu 0`."""
    host_ids = []
    for name, w in workers.items():
        n = re.fullmatch(r"worker-gpu(\d+)", name)
        assert n, f"{name}: worker services are named worker-gpuN"
        [device] = _devices(w)
        assert device["device_ids"] == [n.group(1)], name
        cmd = _command(w)
        assert cmd[cmd.index("--gpu") + 1] == "0", f"{name}: the container sees its one GPU as index 0"
        assert cmd[cmd.index("--name") + 1] == f"swarmq-gpu{n.group(1)}", name
        host_ids.append(n.group(1))
    assert len(set(host_ids)) == len(host_ids), "two workers reserve the same GPU"


def test_flower_is_optional(services: dict[str, dict[str, Any]]) -> None:
    flower = services["flower"]
    assert flower["profiles"] == ["flower"]
    assert _command(flower) == ["celery", "flower", "--port=5555"]


def test_dockerfile_builds_cuda_llama_and_installs_the_repo() -> None:
    text = DOCKERFILE.read_text()
    joined = re.sub(r"\\\n", " ", text)  # continuation lines, as Docker joins them
    froms = re.findall(r"^FROM\s+(\S+)", joined, re.M)
    assert froms == [
        "nvidia/cuda:${CUDA_VERSION}-devel-ubuntu22.04",
        "nvidia/cuda:${CUDA_VERSION}-runtime-ubuntu22.04",
    ]
    assert re.search(r"^ARG CUDA_VERSION=\d+\.\d+\.\d+$", text, re.M)
    # The image builds the llama-cpp-python version that `make` builds (scripts/llama-wheel.sh), whatever it is.
    wanted = re.search(
        r'version="\$\{SWARMQ_LLAMA_VERSION:-([^}]+)\}"', (ROOT / "scripts" / "llama-wheel.sh").read_text()
    )
    assert wanted and re.search(rf"^ARG LLAMA_CPP_VERSION={re.escape(wanted.group(1))}$", text, re.M)
    [build] = [line for line in joined.splitlines() if "pip wheel" in line]
    assert 'CMAKE_ARGS="-DGGML_CUDA=on' in build and "--no-cache-dir" in build
    assert '"llama-cpp-python==${LLAMA_CPP_VERSION}"' in build
    assert re.search(r"pip install --no-deps -e \"/app\[gpu\]\"", joined)
    assert re.search(r"^COPY --from=build /app /app$", text, re.M)
    assert re.search(r"^WORKDIR /app$", text, re.M)
    assert re.search(r'^ENTRYPOINT \["swarmq"\]$', text, re.M)
    assert re.search(r"python3\.1\d", joined)


def test_dockerignore_keeps_migrations_and_drops_models() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    ignored.discard("")
    assert {".git", ".venv", "models"} <= ignored
    assert not any(p.startswith("migrations") or p == "swarmq" or p == "pyproject.toml" for p in ignored)
