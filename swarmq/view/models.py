"""Typed view models: everything a page shows, already computed, so that templates and the terminal only
lay it out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Cell:
    """One table cell: the text shown and the exact value it stands for (JSON), so a reader or a test can
    check a rounded number against the source."""

    text: str
    value: str


@dataclass(frozen=True)
class Table:
    """A table built generically from rows of the results (whatever fields they carry)."""

    key: str
    """The results field it comes from (``groups``, ``comparisons``, ...)."""
    columns: list[str]
    rows: list[list[Cell]]


@dataclass(frozen=True)
class JobRow:
    """One job in the experiment's job list and outcome matrix."""

    job_id: int
    condition: str
    replicate: int
    position: int
    instance_id: str
    task_type: str
    status: str
    verdict: str
    """`VERDICTS`: success, failure, unjudged (the scorer could not judge), none (no outcome yet)."""
    score_status: str | None
    agent: int | None
    seconds: float | None
    snippet: str
    """The completion's first line, for the list."""
    search_text: str = ""
    """What the one-file report's text search looks in (empty in the served pages: the server searches)."""
    sample: int = 0
    """Which of the cell's ``generation.samples`` the job is (0: the one the results count)."""


VERDICTS = ("success", "failure", "unjudged", "none")


@dataclass(frozen=True)
class MatrixRow:
    instance_id: str
    task_type: str
    cells: list[JobRow | None]
    """One per `Matrix.columns` entry: the issue's sample 0 in that stream (what the results count); None
    where that stream has no job for the issue."""
    passed: list[str] = field(default_factory=list)
    """One per cell with several samples: its samples that succeeded of those judged (``"2/3"``); empty
    for a one-sample experiment."""


@dataclass(frozen=True)
class Matrix:
    """Issue × (condition, replicate): each job's verdict, in the streams' order."""

    columns: list[tuple[str, int]]
    rows: list[MatrixRow]
    issues: int = 0
    """Issues in the experiment (more than ``rows`` when the matrix is cut)."""


@dataclass(frozen=True)
class FilterOptions:
    """The values each filter can take in this experiment."""

    conditions: list[str]
    replicates: list[int]
    agents: list[int]
    task_types: list[str]
    verdicts: list[str]
    statuses: list[str]
    samples: list[int] = field(default_factory=lambda: [0])


@dataclass(frozen=True)
class ExperimentSummary:
    """A line of the experiments list."""

    name: str
    benchmark: str
    state: str
    complete: bool
    created_at: str
    counts: dict[str, int]
    """jobs, done, running, failed, queued, ... as `report.progress` counts them."""


@dataclass(frozen=True)
class ExperimentPage:
    name: str
    benchmark: str
    state: str
    complete: bool
    """Nothing left to run: the page stops refreshing itself."""
    progress: dict[str, int]
    facts: list[tuple[str, str]]
    """The results' scalar fields (experiment, grouping, success rule, matched set)."""
    tables: list[Table]
    curves_svg: str
    heatmaps_svg: list[tuple[str, str]]
    """(condition, SVG) per condition with routed jobs."""
    matrix: Matrix
    jobs: list[JobRow]
    """The filtered job list (at most `filters.LIMIT` when served; every job in the one-file report)."""
    matching: int
    """How many jobs the filters match (more than ``jobs`` holds when the list is cut)."""
    filters: Any
    options: FilterOptions
    samples: int = 1
    """``generation.samples``: jobs per (condition, replicate, issue); the job list shows which each is."""


@dataclass(frozen=True)
class Segment:
    """A stretch of prompt text: part of the agent's few-shot example ``example_id``, or not (None)."""

    text: str
    example_id: str | None = None


@dataclass(frozen=True)
class Message:
    """A chat message of a chat prompt, split into segments like a plain prompt."""

    role: str
    segments: list[Segment]


@dataclass(frozen=True)
class Route:
    """What the router saw of one agent: its probability or score, and whether it was chosen."""

    agent: int
    probability: float | None
    score: float | None
    chosen: bool


@dataclass(frozen=True)
class JobPage:
    job_id: int
    experiment: str
    condition: str
    replicate: int
    position: int
    instance_id: str
    task_type: str
    status: str
    verdict: str
    facts: list[tuple[str, list[tuple[str, str]]]]
    """Sections of (label, value): the job, the model and sampling, the timings and tokens."""
    errors: list[tuple[str, str]]
    """(where, message): the job's error and the outcome's."""
    score: list[tuple[str, str]]
    """The verdict: rule, status, success, resolved."""
    score_detail: list[tuple[str, str]]
    """The scorer's detail, one entry per field (stderr and other long texts whole)."""
    router: str | None
    routes: list[Route]
    buffer_ids: list[str]
    """The routed agent's buffer at the moment it was routed (example ids are the ids of the jobs they came
    from), rebuilt from Postgres as the swarm's rebuild does."""
    shown_ids: list[str]
    """The examples the prompt showed (recorded with the outcome)."""
    chat: bool
    prompt: list[Segment] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    completion: str = ""
    has_outcome: bool = False
    replay_command: str = ""
    sample: int = 0
    samples: int = 1
    """``generation.samples`` of the experiment: the job is sample ``sample`` of these."""

    @property
    def sample_line(self) -> str:
        """``sample s of n`` and what the sample feeds; empty for a one-sample experiment."""
        if self.samples <= 1 and self.sample == 0:
            return ""
        if self.sample == 0:
            return f"sample 0 of {self.samples}: feeds the swarm and the results tables"
        return (
            f"sample {self.sample} of {self.samples}: feeds nothing (sample 0 feeds the swarm and the "
            "results tables); counted in pass@k and exported"
        )
