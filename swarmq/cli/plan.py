"""`swarmq plan EXP.yaml`: a power plan before the run, for the results table's own test and correction."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from swarmq import api
from swarmq.cli.common import out
from swarmq.errors import ConfigError


def plan(
    config: Annotated[Path, typer.Argument(help="Experiment YAML file.")],
    rate: Annotated[float, typer.Option(help="Assumed pass rate of the conditions compared.")] = 0.3,
    icc: Annotated[
        float,
        typer.Option(help="Intra-issue correlation: share of the outcome variance that is the issue's."),
    ] = 0.3,
    swarm_sd: Annotated[
        float, typer.Option(help="Sd of a swarm's effect on the logit scale (accumulating conditions).")
    ] = 0.5,
    issues: Annotated[
        int | None, typer.Option(help="Issues per replicate (default: the file's dataset, loaded).")
    ] = None,
    difference: Annotated[
        float, typer.Option(help="A true difference (0–1) to size the replicates for.")
    ] = 0.1,
) -> None:
    """The difference detectable at 80% power with the test and Holm correction `results` uses, for assumed
    rates, intra-issue correlation and swarm variance, and the replicates a given difference needs."""
    from swarmq.report import design

    cfg = api.load_experiment(config)
    if issues is None:
        from swarmq.experiment.dataset import load_issues  # a hub dataset downloads: --issues skips it

        issues = len(load_issues(cfg.dataset, cfg.seed))
    if issues < 2:
        raise ConfigError(f"plan: {issues} issue(s): a comparison needs at least 2")
    n_issues = issues
    accumulating = sorted(c for c, cond in cfg.conditions.items() if cond.accumulate)
    n_cond = len(cfg.conditions)
    out.print(
        f"{cfg.name}: {n_issues} issues × {cfg.replicates} replicates × {n_cond} conditions "
        f"({design.pairs(n_cond)} pair(s), Holm); rate {rate:.0%}, intra-issue correlation {icc}, "
        f"swarm sd {swarm_sd} (logit)"
    )
    plain = n_cond - len(accumulating)
    kinds = [
        (0, "neither accumulates", plain >= 2),
        (1, "one accumulates", plain >= 1 and len(accumulating) >= 1),
    ]
    kinds.append((2, "both accumulate", len(accumulating) >= 2))
    for k, label, present in kinds:
        if not present:
            continue
        d = design.Design(n_issues, cfg.replicates, n_cond, k)
        try:
            p = design.plan(d, rate, icc, swarm_sd)
        except ValueError as e:
            raise ConfigError(f"plan: {e}") from None
        det = "—" if p.detectable is None else f"{p.detectable:.1%}"
        need = design.replicates_needed(d, rate, icc, swarm_sd, difference)
        out.print(
            f"  pair where {label}: detectable {det} (se {p.se:.3f}, t({p.df}), "
            f"{'issue × replicate clusters' if p.two_way else 'issue clusters'}"
            + ("" if p.two_way or k == 0 else ", conditional on these swarms")
            + f"); {difference:.0%} needs "
            + ("more than 200 replicates" if need is None else f"{need} replicate(s)")
        )
    if (warning := design.replicates_warning(cfg.replicates, accumulating)) is not None:
        out.print(f"[yellow]{warning}[/yellow]")


def register(app: typer.Typer) -> None:
    app.command()(plan)
