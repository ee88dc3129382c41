"""Results from aggregates kept at write time: `swarmq results` and `v_condition_summary` read counters, not
a million outcome rows.

Every write to ``jobs`` and ``outcomes`` passes a trigger that applies its change to five tables, in the same
transaction as the write (so a crash, a rollback or a kill -9 keeps them equal to a recount; ``COPY``, the
lifecycle commands and `import-eval` included):

* ``agg_cells``: per (experiment, condition, replicate, task type, agent) counters of jobs (done, failed) and
  outcomes (judged, successes, scoring errors, harness verdicts, seconds, tokens, ...). ``agent`` is the
  outcome's agent, -1 for a job without an outcome or a failure outcome (no agent). ``matched`` and
  ``matched_successes`` count the judged outcomes inside the matched set (`report.queries.MATCHED`).
* ``agg_pairs``: per (experiment, replicate, issue): bitmasks of the conditions with a judged outcome and with
  a success (bit k: the k-th condition of the config in byte order; at most 64) and each condition's agent.
  A pair is matched when every condition's bit is set. Each change recomputes the pairs it touches from the
  rows (under the pair's row lock) and applies the difference of their contributions.
* ``agg_issues``: per (experiment, condition, issue): judged outcomes and successes, all and matched: the
  issue-clustered intervals (`report.queries.issue_counts`).
* ``agg_issue_pairs``: per (experiment, issue, condition a < b): (issue, replicate) pairs judged in both and
  the summed a − b success: the paired comparisons (`report.queries.paired_sums`).
* ``agg_seconds``: per (experiment, condition, replicate, agent) a histogram of ``job_seconds`` in buckets of
  2^(1/8) (`store.aggregates.BUCKETS_PER_OCTAVE`): p95 within a factor 2^(1/16) (4.4%).

Jobs are removed only with their experiment (its aggregates go by cascade); a DELETE of single jobs is
refused. ``swarmq db rebuild-aggregates`` (`swarmq_agg_rebuild`) recounts an experiment from the rows; this
migration does it for every existing experiment. Sums of seconds are ``numeric`` (each float8 value rounded to
15 digits): additions and subtractions are exact, so maintained and rebuilt tables are equal, not nearly.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# Frozen copies of the app's rules (migrations never import the app): a scoring error is
# `benchmarks.base.UNJUDGED`; the histogram is `store.aggregates`' (8 buckets per octave, floor bucket -161).
JUDGED = "(o.id IS NOT NULL AND NOT coalesce(o.score_status = 'error', false))"
SUCCESS = "coalesce(o.success, false)"

CELL_KEY = ("experiment_id", "condition", "replicate", "task_type", "agent")
JOB_COUNTERS = {
    "jobs": "1",
    "done": "(j.status = 'done')::int",
    "failed": "(j.status = 'failed')::int",
}
"""A job's own counters, in the cell of its outcome's agent (-1 without one)."""
OUTCOME_COUNTERS = {
    "outcomes": "1",
    "scoring_errors": "coalesce(o.score_status = 'error', false)::int",
    "judged": f"{JUDGED}::int",
    "successes": f"{SUCCESS}::int",
    "judged_successes": f"({JUDGED} AND {SUCCESS})::int",
    "resolved": "coalesce(o.resolved, false)::int",
    "imported": "(o.resolved IS NOT NULL)::int",
    "seconds_n": "(o.job_seconds IS NOT NULL)::int",
    "seconds_sum": "coalesce(o.job_seconds::numeric, 0)",
    "tokens_sum": "o.completion_tokens",
    "generation_n": "(o.generation_seconds IS NOT NULL)::int",
    "generation_sum": "coalesce(o.generation_seconds::numeric, 0)",
    "length_n": "coalesce(o.finish_reason = 'length', false)::int",
    "finish_n": "(o.finish_reason IS NOT NULL)::int",
    "errors_n": "(o.error IS NOT NULL)::int",
}
"""An outcome's counters (``o``; ``o.id`` is never NULL here)."""
MATCH_COUNTERS = ("matched", "matched_successes")
NUMERIC = {"seconds_sum", "generation_sum"}
ALL_CELL = [*JOB_COUNTERS, *OUTCOME_COUNTERS, *MATCH_COUNTERS]
OUTCOME_COLUMNS = (
    "job_id",
    "agent_id",
    "success",
    "score_status",
    "resolved",
    "job_seconds",
    "completion_tokens",
    "generation_seconds",
    "finish_reason",
    "error",
)
"""The outcome columns the aggregates read: an UPDATE of no other column skips the trigger (`mark_applied`)."""


def _upsert(table: str, key: tuple[str, ...], counters: list[str] | tuple[str, ...], source: str) -> str:
    """Add ``source``'s rows (key columns, then counters) to ``table``, in key order (one lock order for every
    writer); rows whose counters all sum to 0 are skipped."""
    sums = ", ".join(f"sum({c}) AS {c}" for c in counters)
    nonzero = " OR ".join(f"sum({c}) <> 0" for c in counters)
    return (
        f"INSERT INTO {table} AS t ({', '.join([*key, *counters])}) "
        f"SELECT {', '.join(key)}, {sums} FROM ({source}) d GROUP BY {', '.join(key)} HAVING {nonzero} "
        f"ORDER BY {', '.join(key)} "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {', '.join(f'{c} = t.{c} + excluded.{c}' for c in counters)}"
    )


def _cells(frm: str, sign: str, agent: str, *, job: bool, outcome: bool, task: str = "i.task_type") -> str:
    """Cell rows from ``frm`` (aliases ``j``: experiment_id, condition, replicate, status; ``o``: the outcome, its
    id NULL when there is none; ``task``: the issue's task type), times ``sign``: the job's counters when
    ``job``, the outcome's when ``outcome``."""
    parts = []
    for name in ALL_CELL:
        expr = "0"
        if name in JOB_COUNTERS and job:
            expr = JOB_COUNTERS[name]
        elif name in OUTCOME_COUNTERS and outcome:
            expr = f"CASE WHEN o.id IS NULL THEN 0 ELSE {OUTCOME_COUNTERS[name]} END"
        parts.append(f"({sign}) * ({expr})::{'numeric' if name in NUMERIC else 'bigint'} AS {name}")
    return (
        f"SELECT j.experiment_id, j.condition, j.replicate, {task} AS task_type, {agent} AS agent, "
        f"{', '.join(parts)} FROM {frm}"
    )


def _matched_cells(terms: str) -> str:
    """Cell rows of pair terms: the matched set's judged outcomes and successes, in each outcome's cell."""
    cols = ", ".join(
        "sign * m AS matched"
        if c == "matched"
        else "sign * m * s AS matched_successes"
        if c == "matched_successes"
        else f"0::{'numeric' if c in NUMERIC else 'bigint'} AS {c}"
        for c in ALL_CELL
    )
    return f"SELECT experiment_id, condition, replicate, task_type, agent, {cols} FROM {terms}"


def _seconds(frm: str, sign: str) -> str:
    return (
        f"SELECT j.experiment_id, j.condition, j.replicate, coalesce(o.agent_id, -1) AS agent, "
        f"swarmq_agg_bucket(o.job_seconds) AS bucket, ({sign})::bigint AS n FROM {frm} "
        f"WHERE o.job_seconds IS NOT NULL"
    )


SECONDS_KEY = ("experiment_id", "condition", "replicate", "agent", "bucket")
ISSUE_KEY = ("experiment_id", "condition", "instance_id")
ISSUE_COUNTERS = ("judged", "successes", "matched", "matched_successes")
ISSUE_PAIR_KEY = ("experiment_id", "a", "b", "instance_id")

PAIR_STATE = f"""
    SELECT a.experiment_id, a.replicate, a.instance_id, min(i.task_type) AS task_type,
           coalesce(bit_or(1::bigint << (c.k - 1)::int) FILTER (WHERE {JUDGED}), 0) AS judged,
           coalesce(bit_or(1::bigint << (c.k - 1)::int) FILTER (WHERE {JUDGED} AND {SUCCESS}), 0) AS succeeded,
           array_agg(coalesce(o.agent_id, -1) ORDER BY c.k) AS agents
    FROM aff a
    JOIN issues i ON i.experiment_id = a.experiment_id AND i.instance_id = a.instance_id
    JOIN conds ON conds.experiment_id = a.experiment_id
    CROSS JOIN LATERAL unnest(conds.names) WITH ORDINALITY AS c(condition, k)
    LEFT JOIN jobs j ON j.experiment_id = a.experiment_id AND j.condition = c.condition
                    AND j.replicate = a.replicate AND j.instance_id = a.instance_id
    LEFT JOIN outcomes o ON o.job_id = j.id
    GROUP BY a.experiment_id, a.replicate, a.instance_id
"""
"""The state of each pair in ``aff`` (experiment_id, replicate, instance_id), recomputed from the rows; ``conds``
holds each experiment's condition names in bit order."""

PAIR_TERMS = """
    SELECT ps.sign, ps.experiment_id, ps.replicate, ps.instance_id, ps.task_type, c.condition, c.k,
           ps.agents[c.k] AS agent, ((ps.succeeded >> (c.k - 1)::int) & 1)::int AS s,
           (ps.judged = swarmq_agg_full(cardinality(conds.names)))::int AS m
    FROM ps JOIN conds ON conds.experiment_id = ps.experiment_id
    CROSS JOIN LATERAL unnest(conds.names) WITH ORDINALITY AS c(condition, k)
    WHERE ((ps.judged >> (c.k - 1)::int) & 1) = 1
"""
"""Each judged condition of each pair state in ``ps`` (signed): its success ``s``, whether the pair is matched
``m``. (The issue pairs come from ``ps`` directly: a self-join of this CTE gets a nested loop.)"""


def _bit(mask: str, k: str) -> str:
    """Bit ``k`` (1-based: the k-th condition) of a bigint mask, as 0 or 1."""
    return f"(({mask} >> ({k} - 1)::int) & 1)::int"


def _pair_tail(cell_source: str, seconds_source: str) -> str:
    """The CTEs and final upsert that add cell rows, histogram rows and the pair terms of ``ps`` (needs CTEs
    ``conds`` and ``ps``)."""
    issues = (
        "SELECT experiment_id, condition, instance_id, sign AS judged, sign * s AS successes, "
        "sign * m AS matched, sign * m * s AS matched_successes FROM terms"
    )
    pairs = f"""SELECT ps.experiment_id, x.condition AS a, y.condition AS b, ps.instance_id, ps.sign AS pairs,
               ps.sign * ({_bit("ps.succeeded", "x.k")} - {_bit("ps.succeeded", "y.k")}) AS diff
        FROM ps JOIN conds ON conds.experiment_id = ps.experiment_id
        CROSS JOIN LATERAL unnest(conds.names) WITH ORDINALITY AS x(condition, k)
        CROSS JOIN LATERAL unnest(conds.names) WITH ORDINALITY AS y(condition, k)
        WHERE x.k < y.k AND {_bit("ps.judged", "x.k")} = 1 AND {_bit("ps.judged", "y.k")} = 1"""
    return f"""
        terms AS ({PAIR_TERMS}),
        c1 AS ({_upsert("agg_cells", CELL_KEY, ALL_CELL, f"{cell_source} UNION ALL {_matched_cells('terms')}")}
               RETURNING 1),
        c2 AS ({_upsert("agg_seconds", SECONDS_KEY, ("n",), seconds_source)} RETURNING 1),
        c3 AS ({_upsert("agg_issues", ISSUE_KEY, ISSUE_COUNTERS, issues)} RETURNING 1)
        {_upsert("agg_issue_pairs", ISSUE_PAIR_KEY, ("pairs", "diff"), pairs)}"""


def _conds(experiments: str) -> str:
    return (
        f"conds AS (SELECT id AS experiment_id, swarmq_agg_conditions(id) AS names FROM experiments "
        f"WHERE id IN ({experiments}))"
    )


# An outcome's own counters go to its agent's cell; its job's counters move there from cell -1 while it exists.
_SRC = """src AS (
    SELECT o.sign, o.id, o.agent_id, o.success, o.score_status, o.resolved, o.job_seconds, o.completion_tokens,
           o.generation_seconds, o.finish_reason, o.error, j.experiment_id, j.condition, j.replicate, j.status,
           i.task_type
    FROM (SELECT -1 AS sign, * FROM unnest(olds) UNION ALL SELECT 1, * FROM unnest(news)) o
    JOIN jobs j ON j.id = o.job_id JOIN issues i ON i.id = j.issue_id)"""
_SRC_FROM = "src o CROSS JOIN LATERAL (SELECT o.experiment_id, o.condition, o.replicate, o.status) j"

OUTCOMES_FN = f"""
CREATE FUNCTION swarmq_agg_outcomes(olds outcomes[], news outcomes[]) RETURNS void LANGUAGE plpgsql
-- Planned once per session: a custom plan of the statement below costs 2-3 ms, more than running it.
SET plan_cache_mode = force_generic_plan AS $fn$
DECLARE
    before agg_pairs[];
BEGIN
    -- Lock (creating where missing) every pair the change touches, in key order, and keep its state.
    WITH aff AS (
        SELECT DISTINCT j.experiment_id, j.replicate, j.instance_id
        FROM (SELECT job_id FROM unnest(olds) UNION SELECT job_id FROM unnest(news)) x JOIN jobs j ON j.id = x.job_id
    ), locked AS (
        INSERT INTO agg_pairs AS p (experiment_id, replicate, instance_id)
        SELECT * FROM aff ORDER BY 1, 2, 3
        ON CONFLICT (experiment_id, replicate, instance_id) DO UPDATE SET judged = p.judged
        RETURNING p.*
    )
    SELECT coalesce(array_agg(ROW(l.*)::agg_pairs), '{{}}') INTO before FROM locked l;
    IF cardinality(before) = 0 THEN
        RETURN;  -- the jobs are gone with their experiment, whose aggregates go by cascade
    END IF;
    -- A new statement, hence a new snapshot: whatever committed before we held the locks is counted.
    WITH {_SRC},
    aff AS (SELECT experiment_id, replicate, instance_id FROM unnest(before)),
    {_conds("SELECT DISTINCT experiment_id FROM aff")},
    after AS ({PAIR_STATE}),
    saved AS (
        UPDATE agg_pairs p SET task_type = a.task_type, judged = a.judged, succeeded = a.succeeded, agents = a.agents
        FROM after a
        WHERE (p.experiment_id, p.replicate, p.instance_id) = (a.experiment_id, a.replicate, a.instance_id)
        RETURNING 1
    ),
    ps AS (SELECT -1 AS sign, * FROM unnest(before) UNION ALL SELECT 1, * FROM after),
    {
    _pair_tail(
        _cells(_SRC_FROM, "o.sign", "coalesce(o.agent_id, -1)", job=True, outcome=True, task="o.task_type")
        + " UNION ALL "
        + _cells(_SRC_FROM, "-o.sign", "-1", job=True, outcome=False, task="o.task_type"),
        _seconds(_SRC_FROM, "o.sign"),
    )
};
END
$fn$"""

REBUILD_FN = f"""
CREATE FUNCTION swarmq_agg_rebuild(e integer) RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    -- No write to jobs or outcomes may interleave with the recount.
    LOCK TABLE jobs, outcomes IN SHARE ROW EXCLUSIVE MODE;
    DELETE FROM agg_cells WHERE experiment_id = e;
    DELETE FROM agg_seconds WHERE experiment_id = e;
    DELETE FROM agg_pairs WHERE experiment_id = e;
    DELETE FROM agg_issues WHERE experiment_id = e;
    DELETE FROM agg_issue_pairs WHERE experiment_id = e;
    WITH aff AS (
        SELECT DISTINCT j.experiment_id, j.replicate, j.instance_id
        FROM jobs j JOIN outcomes o ON o.job_id = j.id WHERE j.experiment_id = e
    ),
    {_conds("e")},
    after AS ({PAIR_STATE}),
    saved AS (INSERT INTO agg_pairs SELECT * FROM after RETURNING 1),
    ps AS (SELECT 1 AS sign, * FROM after),
    {
    _pair_tail(
        _cells(
            "jobs j JOIN issues i ON i.id = j.issue_id LEFT JOIN outcomes o ON o.job_id = j.id "
            "WHERE j.experiment_id = e",
            "1",
            "coalesce(o.agent_id, -1)",
            job=True,
            outcome=True,
        ),
        _seconds("jobs j JOIN outcomes o ON o.job_id = j.id AND j.experiment_id = e", "1"),
    )
};
END
$fn$"""

JOBS_FROM = "j JOIN issues i ON i.id = j.issue_id LEFT JOIN outcomes o ON o.job_id = j.id"
TRIGGER_FNS = [
    f"""
    CREATE FUNCTION swarmq_agg_jobs_inserted() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
        {
        _upsert(
            "agg_cells",
            CELL_KEY,
            ALL_CELL,
            _cells(f"new_jobs {JOBS_FROM}", "1", "coalesce(o.agent_id, -1)", job=True, outcome=False),
        )
    };
        RETURN NULL;
    END
    $fn$""",
    f"""
    CREATE FUNCTION swarmq_agg_job_status() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
        {
        _upsert(
            "agg_cells",
            CELL_KEY,
            ALL_CELL,
            _cells(
                "(VALUES (-1, OLD.id, OLD.experiment_id, OLD.condition, OLD.replicate, OLD.status, OLD.issue_id), "
                "(1, NEW.id, NEW.experiment_id, NEW.condition, NEW.replicate, NEW.status, NEW.issue_id)) "
                f"AS j(sign, id, experiment_id, condition, replicate, status, issue_id) {JOBS_FROM[2:]}",
                "j.sign",
                "coalesce(o.agent_id, -1)",
                job=True,
                outcome=False,
            ),
        )
    };
        RETURN NULL;
    END
    $fn$""",
    """
    CREATE FUNCTION swarmq_agg_jobs_deleted() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
        IF EXISTS (SELECT 1 FROM old_jobs j JOIN experiments e ON e.id = j.experiment_id) THEN
            RAISE EXCEPTION 'jobs are deleted with their experiment (the results aggregates count them)';
        END IF;
        RETURN NULL;
    END
    $fn$""",
    """
    CREATE FUNCTION swarmq_agg_outcomes_written() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
        IF TG_LEVEL = 'ROW' THEN
            PERFORM swarmq_agg_outcomes(ARRAY[OLD], ARRAY[NEW]);
        ELSIF TG_OP = 'INSERT' THEN
            PERFORM swarmq_agg_outcomes('{}', ARRAY(SELECT ROW(o.*)::outcomes FROM new_outcomes o));
        ELSE
            PERFORM swarmq_agg_outcomes(ARRAY(SELECT ROW(o.*)::outcomes FROM old_outcomes o), '{}');
        END IF;
        RETURN NULL;
    END
    $fn$""",
    """
    CREATE FUNCTION swarmq_agg_truncated() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
        PERFORM swarmq_agg_rebuild(id) FROM experiments;
        RETURN NULL;
    END
    $fn$""",
]
TRIGGERS = [
    "CREATE TRIGGER agg_jobs_inserted AFTER INSERT ON jobs REFERENCING NEW TABLE AS new_jobs "
    "FOR EACH STATEMENT EXECUTE FUNCTION swarmq_agg_jobs_inserted()",
    "CREATE TRIGGER agg_job_status AFTER UPDATE OF status ON jobs FOR EACH ROW "
    "WHEN (OLD.status IS DISTINCT FROM NEW.status AND (OLD.status IN ('done', 'failed') "
    "OR NEW.status IN ('done', 'failed'))) EXECUTE FUNCTION swarmq_agg_job_status()",
    "CREATE TRIGGER agg_jobs_deleted AFTER DELETE ON jobs REFERENCING OLD TABLE AS old_jobs "
    "FOR EACH STATEMENT EXECUTE FUNCTION swarmq_agg_jobs_deleted()",
    "CREATE TRIGGER agg_outcomes_inserted AFTER INSERT ON outcomes REFERENCING NEW TABLE AS new_outcomes "
    "FOR EACH STATEMENT EXECUTE FUNCTION swarmq_agg_outcomes_written()",
    "CREATE TRIGGER agg_outcomes_deleted AFTER DELETE ON outcomes REFERENCING OLD TABLE AS old_outcomes "
    "FOR EACH STATEMENT EXECUTE FUNCTION swarmq_agg_outcomes_written()",
    f"CREATE TRIGGER agg_outcomes_updated AFTER UPDATE OF {', '.join(OUTCOME_COLUMNS)} ON outcomes FOR EACH ROW "
    "EXECUTE FUNCTION swarmq_agg_outcomes_written()",
    "CREATE TRIGGER agg_jobs_truncated AFTER TRUNCATE ON jobs FOR EACH STATEMENT "
    "EXECUTE FUNCTION swarmq_agg_truncated()",
    "CREATE TRIGGER agg_outcomes_truncated AFTER TRUNCATE ON outcomes FOR EACH STATEMENT "
    "EXECUTE FUNCTION swarmq_agg_truncated()",
]

V_CONDITION_SUMMARY = """
CREATE VIEW v_condition_summary AS
SELECT e.name AS experiment, c.condition,
       sum(c.jobs)::bigint AS jobs,
       sum(c.done)::bigint AS done,
       sum(c.failed)::bigint AS failed,
       sum(c.outcomes)::bigint AS outcomes,
       sum(c.scoring_errors)::bigint AS scoring_errors,
       sum(c.successes)::bigint AS successes,
       sum(c.judged_successes) / nullif(sum(c.judged), 0) AS success_rate,
       sum(c.resolved)::bigint AS resolved,
       sum(c.imported)::bigint AS imported,
       (sum(c.seconds_sum) / nullif(sum(c.seconds_n), 0))::double precision AS mean_job_seconds,
       CASE WHEN sum(c.generation_n) > 0
            THEN (sum(c.tokens_sum) / nullif(sum(c.generation_sum), 0))::double precision END
           AS generation_tokens_per_second,
       sum(c.length_n) / nullif(sum(c.finish_n), 0) AS share_max_tokens
FROM agg_cells c JOIN experiments e ON e.id = c.experiment_id
GROUP BY e.name, c.condition
"""
"""Per experiment and condition, from the aggregates (the columns of revision 0003's scan of v_outcomes)."""

V_AGENT_SUMMARY = """
CREATE VIEW v_agent_summary AS
SELECT e.name AS experiment, c.condition, c.replicate, nullif(c.agent, -1) AS agent_id,
       sum(c.outcomes)::bigint AS outcomes,
       sum(c.scoring_errors)::bigint AS scoring_errors,
       sum(c.judged)::bigint AS judged,
       sum(c.successes)::bigint AS successes,
       sum(c.judged_successes) / nullif(sum(c.judged), 0) AS success_rate,
       (sum(c.seconds_sum) / nullif(sum(c.seconds_n), 0))::double precision AS mean_job_seconds
FROM agg_cells c JOIN experiments e ON e.id = c.experiment_id
WHERE c.outcomes <> 0
GROUP BY e.name, c.condition, c.replicate, c.agent
"""
"""Per experiment, condition, replicate and agent (NULL: failure outcomes): what a GROUP BY over v_outcomes
would give, from the aggregates."""

OLD_V_CONDITION_SUMMARY = """
CREATE VIEW v_condition_summary AS
SELECT experiment, condition,
       count(*) AS jobs,
       count(*) FILTER (WHERE status = 'done') AS done,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(success) AS outcomes,
       count(*) FILTER (WHERE score_status = 'error') AS scoring_errors,
       count(*) FILTER (WHERE success) AS successes,
       avg(success::int) FILTER (WHERE score_status IS DISTINCT FROM 'error') AS success_rate,
       count(*) FILTER (WHERE resolved) AS resolved,
       count(resolved) AS imported,
       avg(job_seconds) AS mean_job_seconds,
       sum(completion_tokens) / nullif(sum(generation_seconds), 0) AS generation_tokens_per_second,
       avg((finish_reason = 'length')::int) AS share_max_tokens
FROM v_outcomes
GROUP BY experiment, condition
"""
"""Revision 0003's view, for the downgrade."""

TABLES = ("agg_issue_pairs", "agg_issues", "agg_pairs", "agg_seconds", "agg_cells")
FUNCTIONS = (
    "swarmq_agg_truncated()",
    "swarmq_agg_outcomes_written()",
    "swarmq_agg_jobs_deleted()",
    "swarmq_agg_job_status()",
    "swarmq_agg_jobs_inserted()",
    "swarmq_agg_rebuild(integer)",
    "swarmq_agg_outcomes(outcomes[], outcomes[])",
    "swarmq_agg_conditions(integer)",
    "swarmq_agg_full(integer)",
    "swarmq_agg_bucket(double precision)",
)


def _ddl() -> list[str]:
    counters = ",\n".join(
        f"    {c} {'numeric' if c in NUMERIC else 'bigint'} NOT NULL DEFAULT 0" for c in ALL_CELL
    )
    fk = "experiment_id integer NOT NULL REFERENCES experiments (id) ON DELETE CASCADE"
    return [
        f"""CREATE TABLE agg_cells ({fk}, condition varchar(64) NOT NULL, replicate integer NOT NULL,
            task_type varchar(32) NOT NULL, agent integer NOT NULL,
            {counters},
            PRIMARY KEY (experiment_id, condition, replicate, task_type, agent))""",
        f"""CREATE TABLE agg_seconds ({fk}, condition varchar(64) NOT NULL, replicate integer NOT NULL,
            agent integer NOT NULL, bucket smallint NOT NULL, n bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (experiment_id, condition, replicate, agent, bucket))""",
        f"""CREATE TABLE agg_pairs ({fk}, replicate integer NOT NULL, instance_id text NOT NULL,
            task_type varchar(32), judged bigint NOT NULL DEFAULT 0, succeeded bigint NOT NULL DEFAULT 0,
            agents integer[] NOT NULL DEFAULT '{{}}',
            PRIMARY KEY (experiment_id, replicate, instance_id))""",
        f"""CREATE TABLE agg_issues ({fk}, condition varchar(64) NOT NULL, instance_id text NOT NULL,
            judged bigint NOT NULL DEFAULT 0, successes bigint NOT NULL DEFAULT 0, matched bigint NOT NULL DEFAULT 0,
            matched_successes bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (experiment_id, condition, instance_id))""",
        f"""CREATE TABLE agg_issue_pairs ({fk}, a varchar(64) NOT NULL, b varchar(64) NOT NULL,
            instance_id text NOT NULL, pairs bigint NOT NULL DEFAULT 0, diff bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (experiment_id, a, b, instance_id))""",
        """CREATE FUNCTION swarmq_agg_bucket(seconds double precision) RETURNS smallint
           LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
               SELECT CASE WHEN seconds IS NULL THEN NULL
                           WHEN seconds < 2 ^ -20 THEN -161
                           ELSE least(160, floor(8 * ln(seconds) / ln(2)))::smallint END
           $$""",
        """CREATE FUNCTION swarmq_agg_full(n integer) RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
               SELECT CASE WHEN n >= 64 THEN -1::bigint ELSE ~((-1)::bigint << n) END
           $$""",
        """CREATE FUNCTION swarmq_agg_conditions(e integer) RETURNS text[] LANGUAGE sql STABLE AS $$
               SELECT array_agg(k ORDER BY k COLLATE "C")
               FROM experiments x, jsonb_object_keys(x.config->'conditions') k WHERE x.id = e
           $$""",
    ]


def upgrade() -> None:
    for stmt in [*_ddl(), OUTCOMES_FN, REBUILD_FN, *TRIGGER_FNS, *TRIGGERS]:
        op.execute(stmt)
    op.execute("SELECT swarmq_agg_rebuild(id) FROM experiments")  # backfill
    op.execute("DROP VIEW v_condition_summary")
    op.execute(V_CONDITION_SUMMARY)
    op.execute(V_AGENT_SUMMARY)


def downgrade() -> None:
    op.execute("DROP VIEW v_agent_summary")
    op.execute("DROP VIEW v_condition_summary")
    op.execute(OLD_V_CONDITION_SUMMARY)
    for trigger in TRIGGERS:
        name, table = trigger.split()[2], trigger.split(" ON ")[1].split()[0]
        op.execute(f"DROP TRIGGER {name} ON {table}")
    for fn in FUNCTIONS:
        op.execute(f"DROP FUNCTION {fn}")
    for t in TABLES:
        op.execute(f"DROP TABLE {t}")
