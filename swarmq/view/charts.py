"""Charts drawn as inline SVG (no script, no external asset): learning curves and routing heatmaps, from the
same pure functions as the PNG plots (`report.plots.learning_curve`, `routing_shares`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from swarmq.report.plots import learning_curve, routing_shares

COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
DASHES = ("", "6 3", "2 3", "8 3 2 3")


def curves(rows: Sequence[Mapping[str, Any]]) -> dict[str, tuple[list[float], int]]:
    """Per condition: the learning curve over its replicates (judged outcomes only, in stream order) and
    how many replicates it averages."""
    streams: dict[str, dict[int, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["judged"]:
            streams[str(r["condition"])][int(r["replicate"])].append(bool(r["success"]))
    return {c: (learning_curve(list(reps.values())), len(reps)) for c, reps in sorted(streams.items())}


def curves_svg(data: Mapping[str, tuple[list[float], int]], *, width: int = 640, height: int = 300) -> str:
    """Cumulative success rate against jobs done in the stream, one line per condition."""
    left, right, top, bottom = 48, 170, 12, 40
    w, h = width - left - right, height - top - bottom
    longest = max((len(c) for c, _ in data.values()), default=0)
    if longest == 0:
        return '<p class="empty">no judged outcomes yet</p>'

    def x(k: int) -> float:
        return left + (w * (k - 1) / (longest - 1) if longest > 1 else w / 2)

    def y(v: float) -> float:
        return top + h * (1 - v)

    parts = [
        f'<svg class="chart" role="img" aria-label="learning curves" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for v in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(
            f'<line x1="{left}" x2="{left + w}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="grid"/>'
            f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.2f}</text>'
        )
    step = max(1, longest // 8)
    for k in range(1, longest + 1, step):
        parts.append(f'<text x="{x(k):.1f}" y="{top + h + 16}" text-anchor="middle">{k}</text>')
    parts.append(
        f'<text x="{left + w / 2:.1f}" y="{height - 6}" text-anchor="middle">jobs done in the stream</text>'
    )
    for i, (cond, (curve, reps)) in enumerate(data.items()):
        colour, dash = COLOURS[i % len(COLOURS)], DASHES[i % len(DASHES)]
        points = " ".join(f"{x(k + 1):.1f},{y(v):.1f}" for k, v in enumerate(curve))
        title = escape(f"{cond}: {curve[-1]:.3f} after {len(curve)} jobs ({reps} replicates)")
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}" '
            f'points="{points}" data-condition="{escape(cond)}"><title>{title}</title></polyline>'
        )
        ly = top + 14 + 18 * i
        parts.append(
            f'<line x1="{left + w + 12}" x2="{left + w + 36}" y1="{ly - 4}" y2="{ly - 4}" stroke="{colour}" '
            f'stroke-width="2" stroke-dasharray="{dash}"/>'
            f'<text x="{left + w + 40}" y="{ly}">{escape(cond)} ({reps})</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def heatmaps(
    rows: Sequence[Mapping[str, Any]], agents: Mapping[str, int]
) -> dict[str, tuple[list[str], list[str], list[list[float]], list[list[int]]]]:
    """Per condition with routed jobs: row labels (replicate, agent), task types, the share of each task
    type's jobs routed to each row (`routing_shares`) and the counts. A replicate's agent k is its own agent,
    as in S and F."""
    counts: dict[str, dict[tuple[int, str], int]] = defaultdict(lambda: defaultdict(int))
    replicates: dict[str, set[int]] = defaultdict(set)
    for r in rows:
        if r["agent_id"] is None:  # a failure outcome: never routed
            continue
        cond, per = str(r["condition"]), agents.get(str(r["condition"]), 1)
        replicates[cond].add(int(r["replicate"]))
        counts[cond][(int(r["replicate"]) * per + int(r["agent_id"]), str(r["task_type"]))] += 1
    types = sorted({str(r["task_type"]) for r in rows})
    out = {}
    for cond in sorted(counts):
        per = agents.get(cond, 1)
        keys = [rep * per + a for rep in sorted(replicates[cond]) for a in range(per)]
        shares = routing_shares(counts[cond], keys, types)
        labels = [f"r{k // per} agent {k % per}" for k in keys]
        n = [[counts[cond].get((k, t), 0) for t in types] for k in keys]
        out[cond] = (labels, types, shares, n)
    return out


def heatmap_svg(
    labels: Sequence[str],
    types: Sequence[str],
    shares: Sequence[Sequence[float]],
    counts: Sequence[Sequence[int]],
) -> str:
    """A grid of (replicate, agent) × task type cells shaded by share, each labelled with share and count."""
    cw, ch, left, top = 78, 30, 110, 26
    width, height = left + cw * len(types) + 8, top + ch * len(labels) + 8
    parts = [
        f'<svg class="chart heatmap" role="img" aria-label="routing heatmap" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for t, ttype in enumerate(types):
        parts.append(
            f'<text x="{left + cw * t + cw / 2}" y="{top - 8}" text-anchor="middle">{escape(ttype)}</text>'
        )
    for a, label in enumerate(labels):
        y = top + ch * a
        parts.append(f'<text x="{left - 6}" y="{y + ch / 2 + 4}" text-anchor="end">{escape(label)}</text>')
        for t in range(len(types)):
            share, n = shares[a][t], counts[a][t]
            light = 96 - 60 * share  # white (no jobs) to deep blue (every job of the type)
            ink = "#fff" if share > 0.55 else "#111"  # readable on dark and light cells
            parts.append(
                f'<rect x="{left + cw * t}" y="{y}" width="{cw - 2}" height="{ch - 2}" '
                f'fill="hsl(212, 70%, {light:.0f}%)"><title>{escape(label)}, {escape(types[t])}: '
                f"{n} jobs, {share:.2f} of the type</title></rect>"
                f'<text x="{left + cw * t + cw / 2 - 1}" y="{y + ch / 2 + 4}" text-anchor="middle" '
                f'style="fill: {ink}">{share:.2f} ({n})</text>'
            )
    parts.append("</svg>")
    return "".join(parts)
