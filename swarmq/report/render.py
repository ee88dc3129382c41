"""Rendering results for people (rich tables) and programs (JSON, CSV). No queries here."""

from __future__ import annotations

import csv
import io
import json
from typing import Any, NamedTuple

from rich import box
from rich.console import Console
from rich.table import Table

from swarmq.report.columns import keep

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


def p_value(p: float) -> str:
    """A p-value as printed: four decimals, and ``< 0.0001`` below that (never ``0.0000``)."""
    return "< 0.0001" if p < 1e-4 else f"{p:.4f}"


def _interval(ci: list[float]) -> str:
    return f"[{_pct(ci[0])}, {_pct(ci[1])}]"


class Column(NamedTuple):
    header: str
    cells: list[str]
    priority: int
    """Lower stays longer: columns are left out from the highest priority until the table fits."""
    right: bool = True


def fit(columns: list[Column], width: int) -> tuple[list[Column], list[str]]:
    """The columns that fit ``width`` characters, in their order, and the headers left out, by `columns.keep`
    (the one rule for every table): priority 0 always stays (names are never cut; rich folds one that alone
    is wider than the terminal). Between two columns: their padding and the separator, 3 characters."""
    widths = [max(len(line) for text in (c.header, *c.cells) for line in text.split("\n")) for c in columns]
    shown = keep(widths, [c.priority for c in columns], width, gap=3)
    return [columns[i] for i in shown], [c.header for i, c in enumerate(columns) if i not in shown]


def _table(title: str, columns: list[Column], console: Console) -> list[str]:
    """A rich table of the columns that fit the console; returns the headers left out."""
    kept, dropped = fit(columns, console.width)
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, title_justify="left")
    for c in kept:
        table.add_column(
            c.header,
            justify="right" if c.right else "left",
            overflow="fold",
            min_width=len(c.header) if c.priority == 0 else None,
        )
    for row in zip(*(c.cells for c in kept), strict=True):
        table.add_row(*row)
    console.print(table)
    return dropped


def print_table(data: dict[str, Any], console: Console) -> None:
    """The results for people, at the console's width: columns are left out by priority (named under the
    table; `--format json` has them all), names are never cut."""
    groups = data["groups"]
    keys = [k for k in KEY_COLUMNS if groups and k in groups[0]]
    matched = data.get("matched", False)
    clustered = bool(groups) and "ci95_clustered" in groups[0]
    imported = any(g["imported"] for g in groups)
    ci = "ci95_clustered" if clustered else "ci95"
    rate_header = "rate [95% CI]" if clustered else "rate [Wilson, indep.]"
    columns = [Column(k, [str(g[k]) for g in groups], 0, right=False) for k in keys]
    columns += [
        Column(
            rate_header,
            [
                "-" if g["success_rate"] is None else f"{_pct(g['success_rate'])} {_interval(g[ci])}"
                for g in groups
            ],
            0,
        ),
        Column("n", [str(g["judged"]) for g in groups], 1),
        Column("succ.", [str(g["successes"]) for g in groups], 2),
        Column("score err", [str(g["scoring_errors"]) for g in groups], 2),
    ]
    columns += [Column("outside", [str(g["outside"]) for g in groups], 3)] if matched else []
    columns += [Column("issues", [str(g.get("issues", "")) for g in groups], 4)] if clustered else []
    columns += [
        Column("jobs", [str(g["jobs"]) for g in groups], 5),
        Column("failed", [str(g["failed"]) for g in groups], 5),
        Column("s/job", [_num(g["mean_seconds"]) for g in groups], 6),
        Column("errors", [_pct(g["share_errors"]) for g in groups], 6),
        Column("max_tokens", [_pct(g["share_max_tokens"]) for g in groups], 7),
    ]
    columns += [Column("Wilson (indep.)", [_interval(g["ci95"]) for g in groups], 8)] if clustered else []
    columns += [
        Column("done", [str(g["done"]) for g in groups], 9),
        Column("outcomes", [str(g["outcomes"]) for g in groups], 9),
        Column("p95 s", [_num(g["p95_seconds"]) for g in groups], 9),
        Column("gen tok/s", [_num(g["tokens_per_second"], "{:.1f}") for g in groups], 9),
    ]
    columns += (
        [Column("resolved", [f"{g['resolved']}/{g['imported']}" for g in groups], 4)] if imported else []
    )
    scope = "matched set" if matched else "all outcomes, unmatched"
    dropped = _table(
        f"{data['experiment']} by {data['by']} ({scope}; success: {data['success_rule']})", columns, console
    )
    console.print(LEGEND)
    if clustered:
        console.print(
            "rate [95% CI]: clustered by issue (and by replicate for a condition that accumulates, from 5 "
            "replicates), t(G−1) with G the fewer clusters, never zero-width; Wilson (indep.) assumes "
            "independent outcomes"
        )
    if dropped:
        console.print(f"left out at this width: {', '.join(dropped)} (a wider terminal or --format json)")
    if matched:
        outside = sum(int(g["outside"]) for g in groups)
        console.print(
            f"rates over the matched set: (replicate, issue) pairs every condition has a judged outcome "
            f"for; {outside} judged outcome(s) outside it (`--all` counts them)"
        )
    if int(data.get("samples", 1)) > 1:
        console.print(f"rates: sample 0 of each cell; pass@k: all {data['samples']} samples")
    unjudged = sum(int(g["scoring_errors"]) for g in groups)
    if unjudged:
        console.print(
            f"[bold red]{unjudged} outcome(s) could not be scored[/bold red] (the scorer failed, not the "
            "model): left out of the rates; see score_detail in `swarmq export`."
        )
    if data["comparisons"]:
        print_comparisons(data, console)
    if data.get("task_type_comparisons"):
        print_task_type_comparisons(data["task_type_comparisons"], console)
    if data.get("pass_at_k"):
        print_pass_at_k(data, console)
    if data.get("specialization"):
        print_specialization(data["specialization"], console)


def conditional_note(data: dict[str, Any]) -> str | None:
    """The words a comparison of accumulating conditions carries with too few swarms to estimate their
    variance."""
    if not any(c.get("conditional") for c in data["comparisons"]):
        return None
    return (
        f"conditional on these swarms: comparisons of accumulating conditions rest on "
        f"{data.get('replicates_run', '?')} swarm(s) each, too few (< 5) to estimate the variance between "
        "swarms; other swarms of the same conditions may differ (run 5 or more replicates to generalise)"
    )


def print_comparisons(data: dict[str, Any], console: Console) -> None:
    comps = data["comparisons"]
    interim = "[bold yellow]interim: not a final test[/bold yellow] — " if data.get("interim") else ""
    scope = (
        "on the matched set (the rates' cells)"
        if data.get("matched")
        else "all outcomes, unmatched: each pair on its own (issue, replicate) cells"
    )
    pair = [
        Column("a", [c["a"] for c in comps], 0, right=False),
        Column("b", [c["b"] for c in comps], 0, right=False),
    ]
    rest = [
        Column("diff a−b", [_pct(c["paired_diff"]) for c in comps], 0),
        Column("95% CI", [_interval(c["paired_ci95"]) for c in comps], 0),
        Column("p Holm", [p_value(c["p_holm"]) for c in comps], 0),
        Column("detectable", ["—" if c["mdd80"] is None else _pct(c["mdd80"]) for c in comps], 1),
        Column("n (iss×rep)", [f"{c['pairs']} ({c['issues']}×{c['replicates']})" for c in comps], 2),
        Column("p", [p_value(c["p_paired"]) for c in comps], 3),
        Column("clusters", ["issue×rep" if c["two_way"] else "issue" for c in comps], 4),
        Column("p Fisher (indep.)", [p_value(c["p_fisher"]) for c in comps], 5),
    ]
    if "detectable" in fit(pair + rest, console.width)[1]:  # narrow: a over b in one column
        pair = [Column("a\nvs b", [f"{c['a']}\nvs {c['b']}" for c in comps], 0, right=False)]
    dropped = _table(f"{interim}pairwise comparisons {scope}", pair + rest, console)
    console.print(
        "diff: mean paired difference; 95% CI and p: t(df) on a standard error clustered by issue (and by "
        "replicate where 'issue×rep'); p Holm: adjusted across pairs; detectable: the difference found with "
        "80% power by that test after Holm ('—': none could be)"
    )
    if dropped:
        console.print(f"left out at this width: {', '.join(dropped)}")
    note = conditional_note(data)
    if note:
        console.print(f"[bold]{note}[/bold]")
    if data.get("interim"):
        console.print(
            "[bold yellow]interim: not a final test[/bold yellow]: jobs remain; reading p again as outcomes "
            "arrive and stopping at p < 0.05 inflates false positives"
        )
    console.print(
        "conclusion (Holm p < 0.05): " + (", ".join(data.get("conclusion") or []) or "no difference")
    )
    sens = data.get("scoring_sensitivity")
    if sens:
        console.print(
            "if every scoring error were a failure: "
            + (", ".join(sens["as_failures"]) or "no difference")
            + "; a success: "
            + (", ".join(sens["as_successes"]) or "no difference")
        )


def print_task_type_comparisons(comps: list[dict[str, Any]], console: Console) -> None:
    columns = [
        Column("task type", [c["task_type"] for c in comps], 0, right=False),
        Column("a\nvs b", [f"{c['a']}\nvs {c['b']}" for c in comps], 0, right=False),
        Column("diff a−b", [_pct(c["paired_diff"]) for c in comps], 0),
        Column("95% CI", [_interval(c["paired_ci95"]) for c in comps], 1),
        Column("p Holm", [p_value(c["p_holm"]) for c in comps], 0),
        Column("detectable", ["—" if c["mdd80"] is None else _pct(c["mdd80"]) for c in comps], 2),
        Column("n", [str(c["pairs"]) for c in comps], 3),
    ]
    dropped = _table(
        f"comparisons within each task type (Holm across all {len(comps)} type × pair tests)",
        columns,
        console,
    )
    if dropped:
        console.print(f"left out at this width: {', '.join(dropped)}")


def print_pass_at_k(data: dict[str, Any], console: Console) -> None:
    rows = data["pass_at_k"]
    ks = sorted({int(k) for r in rows.values() for k in r["pass"]})
    columns = [
        Column("condition", list(rows), 0, right=False),
        Column("samples", [str(r["samples"]) for r in rows.values()], 1),
    ]
    for k in ks:
        columns.append(
            Column(
                f"pass@{k} [95% CI]",
                [
                    f"{_pct(r['pass'][str(k)]['value'])} {_interval(r['pass'][str(k)]['ci95'])}"
                    if str(k) in r["pass"]
                    else "-"
                    for r in rows.values()
                ],
                0 if k == 1 else k,
            )
        )
    dropped = _table(
        "pass@k (unbiased estimator, Chen et al. 2021; intervals clustered by issue)", columns, console
    )
    if dropped:
        console.print(f"left out at this width: {', '.join(dropped)}")


def print_specialization(spec: dict[str, dict[str, Any]], console: Console) -> None:
    names, rows = [], []
    for cond, m in spec.items():
        names.append(cond)
        rows.append(m)
        for r, per in sorted((m.get("per_replicate") or {}).items()):
            if len(m["per_replicate"]) > 1:
                names.append(f"  replicate {r}")
                rows.append(per)

    def f3(x: float | None) -> str:
        return "—" if x is None else f"{x:.3f}"

    columns = [
        Column("condition", names, 0, right=False),
        Column("S", [f3(m["S"]) for m in rows], 0),
        Column("S rand", [f3(m["S_random"]) for m in rows], 0),
        Column("p(S)", [f3(m["S_p"]) for m in rows], 0),
        Column("F (V)", [f3(m["F_cramers_v"]) for m in rows], 1),
        Column("F rand", [f3(m["F_random"]) for m in rows], 1),
        Column("p(F)", [f3(m["F_p"]) for m in rows], 1),
        Column("D ± sd", [f"{m['D']:.3f} ± {m['D_sd']:.3f}" if "D" in m else "-" for m in rows], 2),
        Column("D rand", [_num(m.get("D_null"), "{:.3f}") for m in rows], 3),
    ]
    dropped = _table("swarm metrics, pooled and per replicate, each beside its reference", columns, console)
    console.print(
        "S = I(agent; type | replicate)/H(type | replicate), S rand: agents shuffled within each replicate; "
        "F: Cramér's V of agent × type successes, F rand: successes dealt at random within each (replicate, "
        "type) (no agent effect); D: context divergence, D rand: the same examples dealt at random; "
        "'—': one agent"
    )
    if dropped:
        console.print(f"left out at this width: {', '.join(dropped)}")
