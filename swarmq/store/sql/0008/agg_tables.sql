-- The results aggregates' tables, frozen as revision 0008 wrote it.

CREATE TABLE agg_cells (experiment_id integer NOT NULL REFERENCES experiments (id) ON DELETE
    CASCADE, condition varchar(64) NOT NULL, replicate integer NOT NULL,
            task_type varchar(32) NOT NULL, agent integer NOT NULL,
                jobs bigint NOT NULL DEFAULT 0,
    done bigint NOT NULL DEFAULT 0,
    failed bigint NOT NULL DEFAULT 0,
    outcomes bigint NOT NULL DEFAULT 0,
    scoring_errors bigint NOT NULL DEFAULT 0,
    judged bigint NOT NULL DEFAULT 0,
    successes bigint NOT NULL DEFAULT 0,
    judged_successes bigint NOT NULL DEFAULT 0,
    resolved bigint NOT NULL DEFAULT 0,
    imported bigint NOT NULL DEFAULT 0,
    seconds_n bigint NOT NULL DEFAULT 0,
    seconds_sum numeric NOT NULL DEFAULT 0,
    tokens_sum bigint NOT NULL DEFAULT 0,
    generation_n bigint NOT NULL DEFAULT 0,
    generation_sum numeric NOT NULL DEFAULT 0,
    length_n bigint NOT NULL DEFAULT 0,
    finish_n bigint NOT NULL DEFAULT 0,
    errors_n bigint NOT NULL DEFAULT 0,
    matched bigint NOT NULL DEFAULT 0,
    matched_successes bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (experiment_id, condition, replicate, task_type, agent));

CREATE TABLE agg_seconds (experiment_id integer NOT NULL REFERENCES experiments (id) ON DELETE
    CASCADE, condition varchar(64) NOT NULL, replicate integer NOT NULL,
            agent integer NOT NULL, bucket smallint NOT NULL, n bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (experiment_id, condition, replicate, agent, bucket));

CREATE TABLE agg_pairs (experiment_id integer NOT NULL REFERENCES experiments (id) ON DELETE
    CASCADE, replicate integer NOT NULL, instance_id text NOT NULL,
            task_type varchar(32), judged bigint NOT NULL DEFAULT 0, succeeded bigint NOT NULL
                DEFAULT 0,
            agents integer[] NOT NULL DEFAULT '{}',
            PRIMARY KEY (experiment_id, replicate, instance_id));

CREATE TABLE agg_issues (experiment_id integer NOT NULL REFERENCES experiments (id) ON DELETE
    CASCADE, condition varchar(64) NOT NULL, instance_id text NOT NULL,
            judged bigint NOT NULL DEFAULT 0, successes bigint NOT NULL DEFAULT 0, matched bigint
                NOT NULL DEFAULT 0,
            matched_successes bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (experiment_id, condition, instance_id));

CREATE TABLE agg_issue_pairs (experiment_id integer NOT NULL REFERENCES experiments (id) ON DELETE
    CASCADE, a varchar(64) NOT NULL, b varchar(64) NOT NULL,
            instance_id text NOT NULL, pairs bigint NOT NULL DEFAULT 0, diff bigint NOT NULL DEFAULT
                0,
            PRIMARY KEY (experiment_id, a, b, instance_id));
