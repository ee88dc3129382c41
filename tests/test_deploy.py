"""The cluster examples (issue 14, item 7): the Slurm batch script run for real against stand-in `srun` and
`swarmq` executables, the systemd unit checked by `systemd-analyze verify` where it exists, both tied to the
settings they depend on, and the README section that documents them."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from swarmq.settings import DEFAULTS

ROOT = Path(__file__).resolve().parent.parent
SBATCH = ROOT / "scripts" / "slurm" / "swarmq-workers.sbatch"
UNIT = ROOT / "scripts" / "systemd" / "swarmq-workers.service"
ENV_EXAMPLE = ROOT / "scripts" / "systemd" / "swarmq.env.example"


def executable(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def run_sbatch(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The batch script as Slurm's batch step runs it, with `srun` running its command once (one node) and a
    venv whose `swarmq` writes down how it was called."""
    bin_dir = tmp_path / "bin"
    # srun: write down its own options, drop them, run the task.
    executable(
        bin_dir / "srun",
        f'echo "$*" > {tmp_path}/srun\nwhile [ "${{1#-}}" != "$1" ]; do shift; done\nexec "$@"\n',
    )
    executable(tmp_path / "venv" / "bin" / "swarmq", f'echo "$SWARMQ_EMBEDDED $*" > {tmp_path}/called\n')
    base = {k: v for k, v in os.environ.items() if not k.startswith("SWARMQ_")}
    full_env = {**base, "PATH": f"{bin_dir}:{base['PATH']}", "SWARMQ_VENV": str(tmp_path / "venv"), **env}
    return subprocess.run(
        ["bash", str(SBATCH), *args], env=full_env, cwd=tmp_path, capture_output=True, text=True
    )


def directives(text: str) -> dict[str, str]:
    return dict(m.groups() for m in re.finditer(r"^#SBATCH --([\w-]+)=(\S+)$", text, re.M))


def test_sbatch_starts_one_supervised_worker_set_per_node_on_the_shared_servers(tmp_path: Path) -> None:
    sbatch = directives(SBATCH.read_text())
    assert sbatch["ntasks-per-node"] == "1" and sbatch["gres"].startswith("gpu:")
    # SIGTERM early enough for the supervisor's whole grace period (a worker's grace plus its margin).
    signal, _, early = sbatch["signal"].partition("@")
    assert signal == "TERM" and float(early) > DEFAULTS.supervisor_grace_seconds
    urls = {"SWARMQ_DATABASE_URL": "postgresql://u:p@db/swarmq", "SWARMQ_REDIS_URL": "redis://:p@r:6379/0"}
    r = run_sbatch(tmp_path, "--model", "models/x.gguf", SLURM_CPUS_PER_TASK=sbatch["cpus-per-task"], **urls)
    assert r.returncode == 0, r.stderr
    # Slurm 22.05-23.02 do not pass the batch's --cpus-per-task on to srun's step: the script does.
    assert f"--cpus-per-task={sbatch['cpus-per-task']}" in (tmp_path / "srun").read_text().split()
    assert (tmp_path / "called").read_text().split() == [
        "0",
        "workers",
        "--gpus",
        "all",
        "--model",
        "models/x.gguf",
    ]


@pytest.mark.parametrize("missing", ["SWARMQ_DATABASE_URL", "SWARMQ_REDIS_URL"])
def test_sbatch_without_a_url_fails_before_starting_anything(tmp_path: Path, missing: str) -> None:
    urls = {"SWARMQ_DATABASE_URL": "postgresql://u:p@db/swarmq", "SWARMQ_REDIS_URL": "redis://:p@r:6379/0"}
    del urls[missing]
    r = run_sbatch(tmp_path, **urls)
    assert r.returncode != 0 and f"export {missing}" in r.stderr
    assert not (tmp_path / "called").exists()


def unit_values(text: str) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, value = line.split("=", 1)
            values.setdefault(key, []).append(value)
    return values


def test_systemd_unit_runs_the_supervisor_without_embedded_fallback() -> None:
    unit = unit_values(UNIT.read_text())
    assert unit["ExecStart"][0].endswith("/swarmq workers --gpus all")
    assert "SWARMQ_EMBEDDED=0" in unit["Environment"]
    # systemd signals only the supervisor, and waits out its grace period before SIGKILL.
    assert unit["KillMode"] == ["mixed"] and unit["KillSignal"] == ["SIGTERM"]
    assert float(unit["TimeoutStopSec"][0]) > DEFAULTS.supervisor_grace_seconds
    assert unit["Restart"] == ["on-failure"] and unit["EnvironmentFile"] == ["/etc/swarmq/swarmq.env"]
    example = unit_values(ENV_EXAMPLE.read_text())
    assert set(example) == {"SWARMQ_DATABASE_URL", "SWARMQ_REDIS_URL"}


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_unit_verifies(tmp_path: Path) -> None:
    """systemd's own parser: unknown keys or bad values fail. The paths are pointed at files that exist here."""
    env_file = tmp_path / "swarmq.env"
    env_file.write_text(ENV_EXAMPLE.read_text())
    fake = executable(tmp_path / "venv" / "bin" / "swarmq", "exit 0\n")
    text = UNIT.read_text().replace("/etc/swarmq/swarmq.env", str(env_file))
    text = text.replace("/opt/swarmq/.venv/bin/swarmq", str(fake)).replace("/opt/swarmq", str(tmp_path))
    unit = tmp_path / "swarmq-workers.service"
    unit.write_text(text)
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    problems = [line for line in r.stderr.splitlines() if "swarmq-workers.service" in line]
    assert r.returncode == 0 and problems == [], r.stderr


def test_readme_documents_running_on_a_cluster() -> None:
    readme = (ROOT / "README.md").read_text()
    section = re.split(r"\n#{2,3} ", readme.split("\n### Running on a cluster\n", 1)[1])[0].strip("\n")
    assert len(section.splitlines()) <= 25
    for path in (SBATCH, UNIT, ROOT / "docker-compose.yml", ROOT / ".env.example"):
        assert str(path.relative_to(ROOT)) in section, path
    assert "SWARMQ_EMBEDDED=0" in section and "CUDA_VISIBLE_DEVICES" in section


@pytest.mark.services
def test_a_worker_signalled_by_slurm_and_its_supervisor_finishes_its_job(
    tmp_path: Path, services_env: dict[str, str], database_url: str
) -> None:
    """Slurm's --signal reaches every process of the step, and the supervisor passes its own SIGTERM on: the
    worker gets two. The second is the same stop, so the running job still finishes (exit 0, job done)."""
    import signal
    import threading

    from tests.conftest import swarmq
    from tests.helpers import write_config
    from tests.test_reliability import scalar, start_worker, wait_for

    gate = tmp_path / "gate"
    env = {**services_env, "SWARMQ_TEST_GATE_AFTER": "0", "SWARMQ_TEST_GATE": str(gate)}
    config = write_config(tmp_path, name="twice", limit=1, conditions={"baseline": {}})
    assert swarmq("enqueue", str(config), env=env).returncode == 0
    proc = start_worker(env, generator="gated_generator")
    lines: list[str] = []
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
    reader.start()
    try:
        wait_for(
            lambda: scalar(database_url, "SELECT count(*) FROM jobs WHERE status = 'running'") == 1,
            60,
            "the job",
        )
        proc.send_signal(signal.SIGTERM)  # Slurm's
        wait_for(lambda: any("finishing job(s)" in line for line in lines), 30, "the first SIGTERM taken")
        proc.send_signal(signal.SIGTERM)  # the supervisor's
        wait_for(lambda: any("already stopping" in line for line in lines), 30, "the second SIGTERM taken")
        assert proc.poll() is None, "".join(lines)
        gate.touch()  # the generation may end now
        assert proc.wait(timeout=60) == 0, "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
        reader.join(timeout=10)
    assert scalar(database_url, "SELECT string_agg(status, ',') FROM jobs") == "done"
