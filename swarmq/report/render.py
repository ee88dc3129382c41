"""Rendering results for people (rich tables) and programs (JSON, CSV). No queries here."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from rich.console import Console
from rich.table import Table

KEY_COLUMNS = ("model", "condition", "replicate", "task_type", "agent", "repo")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _num(x: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if x is None else fmt.format(x)


def render_json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, default=str)


def render_csv(data: dict[str, Any]) -> str:
    groups = data["groups"]
    buf = io.StringIO()
    if not groups:
        return ""
    intervals = [k for k in ("ci95", "ci95_clustered") if k in groups[0]]
    fields = [k for k in groups[0] if k not in intervals] + [
        f"{k}_{end}" for k in intervals for end in ("low", "high")
    ]
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for g in groups:
        row = {k: v for k, v in g.items() if k not in intervals}
        for k in intervals:
            row[f"{k}_low"], row[f"{k}_high"] = g[k]
        w.writerow(row)
    return buf.getvalue()


LEGEND = (
    "outcomes: jobs with an outcome (failed jobs included); rate: successes / judged outcomes (a scoring "
    "error is not judged); max_tokens: share cut at max_tokens; errors: share with a generation or job error"
)
"""What the table's less obvious columns mean, printed under it."""


def print_table(data: dict[str, Any], console: Console) -> None:
    groups = data["groups"]
    keys = [k for k in KEY_COLUMNS if groups and k in groups[0]]
    table = Table(title=f"{data['experiment']} — by {data['by']} (success: {data['success_rule']})")
    for k in keys:
        table.add_column(k)
    imported = any(g["imported"] for g in groups)
    matched = data.get("matched", False)
    cols = ["jobs", "done", "failed", "outcomes", "scoring errors", "successes", "rate [95% CI]"]
    cols += (["outside"] if matched else []) + ["s/job", "p95 s", "gen tok/s", "max_tokens", "errors"]
    cols += ["resolved"] if imported else []
    for col in cols:
        table.add_column(col, justify="right")
    for g in groups:
        ci = g["ci95"]
        rate = (
            "-" if g["success_rate"] is None else f"{_pct(g['success_rate'])} [{_pct(ci[0])}, {_pct(ci[1])}]"
        )
        table.add_row(
            *[str(g[k]) for k in keys],
            str(g["jobs"]),
            str(g["done"]),
            str(g["failed"]),
            str(g["outcomes"]),
            str(g["scoring_errors"]),
            str(g["successes"]),
            rate,
            *([str(g["outside"])] if matched else []),
            _num(g["mean_seconds"]),
            _num(g["p95_seconds"]),
            _num(g["tokens_per_second"], "{:.1f}"),
            _pct(g["share_max_tokens"]),
            _pct(g["share_errors"]),
            *([f"{g['resolved']}/{g['imported']}"] if imported else []),
        )
    console.print(table)
    console.print(LEGEND)
    outside = sum(int(g["outside"]) for g in groups) if matched else 0
    if matched:
        console.print(
            f"rates over the matched set: (replicate, issue) pairs every condition has a judged outcome "
            f"for; {outside} judged outcome(s) outside it (`--all` counts them)"
        )
    clustered = [g for g in groups if "ci95_clustered" in g]
    if clustered:
        console.print(
            "rate intervals clustered by issue (replicates of an issue are not independent): "
            + ", ".join(
                f"{g['condition']} [{_pct(g['ci95_clustered'][0])}, {_pct(g['ci95_clustered'][1])}] "
                f"over {g['issues']} issues"
                for g in clustered
            )
        )
    unjudged = sum(int(g["scoring_errors"]) for g in groups)
    if unjudged:
        console.print(
            f"[bold red]{unjudged} outcome(s) could not be scored[/bold red] (the scorer failed, not the "
            "model): left out of the rates; see score_detail in `swarmq export`."
        )
    if data["comparisons"]:
        comp = Table(
            title="pairwise comparisons on matched (issue, replicate) pairs; Fisher assumes independence"
        )
        for col in (
            "a",
            "b",
            "pairs (issues)",
            "diff (a-b)",
            "95% CI (clustered)",
            "p sign-flip",
            "p Holm",
            "detectable (80%)",
            "p Fisher",
        ):
            comp.add_column(col, justify="right" if col not in ("a", "b") else "left")
        for c in data["comparisons"]:
            lo, hi = c["paired_ci95"]
            comp.add_row(
                c["a"],
                c["b"],
                f"{c['pairs']} ({c['issues']})",
                _pct(c["paired_diff"]),
                f"[{_pct(lo)}, {_pct(hi)}]",
                f"{c['p_paired']:.4f}",
                f"{c['p_holm']:.4f}",
                _pct(c["mdd80"]),
                f"{c['p_fisher']:.4f}",
            )
        console.print(comp)
    spec = data.get("specialization") or {}
    if spec:
        st = Table(title="specialization (S: 1-H(type|agent)/H(type); F: Cramér's V; D: context divergence)")
        for col in ("condition", "S", "S random", "p(S)", "F (V)", "p(F)", "D mean ± sd", "D random"):
            st.add_column(col, justify="left" if col == "condition" else "right")
        for cond, m in spec.items():
            d = f"{m['D']:.3f} ± {m['D_sd']:.3f}" if "D" in m else "-"  # no D: no buffers, or not asked
            st.add_row(
                cond,
                f"{m['S']:.3f}",
                f"{m['S_random']:.3f}",
                f"{m['S_p']:.3f}",
                f"{m['F_cramers_v']:.3f}",
                f"{m['F_p']:.3f}",
                d,
                _num(m.get("D_null"), "{:.3f}"),
            )
        console.print(st)
        console.print(
            "S random: S expected if routing ignored task type (same agent loads); D per replicate, "
            "from the buffers replayed out of Postgres; D random: the same examples dealt at random"
        )
