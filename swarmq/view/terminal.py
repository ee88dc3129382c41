"""`swarmq show JOB`: the job page in the terminal, readable at 80 columns (tables of two columns that fold,
long texts as plain wrapped blocks, the prompt's examples between labelled rules)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from swarmq.view.models import JobPage


def _pairs(title: str, pairs: list[tuple[str, str]]) -> Table:
    table = Table(title=title, title_justify="left", show_header=False, box=None, padding=(0, 1))
    table.add_column(style="dim", no_wrap=True)
    table.add_column(overflow="fold")
    for k, v in pairs:
        table.add_row(k, v)
    return table


def show(job: JobPage, console: Console) -> None:
    console.print(
        Text.assemble(
            (f"job {job.job_id}", "bold"),
            f"  {job.experiment} / {job.condition} / r{job.replicate} / {job.instance_id}"
            + (f" #{job.sample}" if job.sample else "")
            + "  ",
            (job.status, "bold"),
            " · ",
            (
                job.verdict,
                {"success": "green", "failure": "red", "unjudged": "yellow"}.get(job.verdict, "dim"),
            ),
        )
    )
    if job.sample_line:
        console.print(job.sample_line, markup=False, highlight=False, style="bold" if job.sample else None)
    if job.replay_command:
        console.print(Text.assemble("replay: ", (job.replay_command, "bold")))
    for title, pairs in job.facts:
        console.print()
        console.print(_pairs(title, pairs))
    for where, msg in job.errors:
        console.print()
        console.rule(f"{where} error", align="left", style="red")
        console.print(msg, markup=False, highlight=False)
    console.print()
    console.print(_pairs("verdict", job.score))
    for k, v in job.score_detail:
        console.rule(f"scorer's {k}", align="left", style="dim")
        console.print(v, markup=False, highlight=False)
    console.print()
    if job.routes:
        console.print(f"routing ({job.router}); * marks the chosen agent", markup=False, highlight=False)
        routing = Table(box=None)
        for col in ("agent", "probability", "score"):
            routing.add_column(col, justify="right")
        for r in job.routes:
            routing.add_row(
                f"{'*' if r.chosen else ' '}{r.agent}",
                "-" if r.probability is None else f"{r.probability:.3f}",
                "-" if r.score is None else f"{r.score:.3f}",
            )
        console.print(routing)
    buffer = ", ".join(f"{i}{' (shown)' if i in job.shown_ids else ''}" for i in job.buffer_ids) or "empty"
    console.print(f"buffer when routed: {buffer}", markup=False, highlight=False)
    console.print()
    console.rule("prompt", align="left")
    if job.chat:
        for m in job.messages:
            owner = m.segments[0].example_id
            console.rule(f"{m.role}" + (f" · example {owner}" if owner else ""), align="left", style="dim")
            console.print(
                m.segments[0].text, markup=False, highlight=False, style="yellow" if owner else None
            )
    else:
        for s in job.prompt:
            if s.example_id:
                console.rule(f"example {s.example_id}", align="left", style="yellow")
                console.print(s.text, markup=False, highlight=False, style="yellow")
                console.rule(f"end of example {s.example_id}", align="left", style="yellow")
            else:
                console.print(s.text, markup=False, highlight=False)
    console.rule("completion", align="left")
    console.print(job.completion, markup=False, highlight=False)
