from __future__ import annotations

from pathlib import Path

import yaml


def write_config(
    tmp_path: Path,
    *,
    name: str = "t",
    limit: int = 2,
    conditions: dict | None = None,
    replicates: int = 1,
    model: str = "models/stand-in.gguf",
    success: str = "non_empty",
    max_tokens: int = 32,
    instance_ids: list[str] | None = None,
    timeout_seconds: float | None = None,
    extra: dict | None = None,
) -> Path:
    cfg = {
        "name": name,
        "seed": 11,
        "dataset": {"benchmark": "humaneval", "source": "bundled", "limit": limit},
        "model": {"path": model, "n_ctx": 2048, "threads": 1},
        "generation": {"max_tokens": max_tokens, "temperature": 0.0, "top_p": 1.0, "seed": 0},
        "conditions": conditions
        or {"baseline": {}, "swarm": {"agents": 2, "router": "round_robin", "accumulate": True}},
        "replicates": replicates,
        "success": {"rule": success},
    }
    if instance_ids:
        cfg["dataset"]["instance_ids"] = instance_ids
    if timeout_seconds is not None:
        cfg["generation"]["timeout_seconds"] = timeout_seconds
    cfg.update(extra or {})  # other top-level keys (jobs_per_message, max_spread, ...)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path
