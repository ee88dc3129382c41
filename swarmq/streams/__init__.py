"""A stream's swarm state kept in step between Postgres (the source of truth) and Redis: the update a job
makes (`updates`) and the orchestration that applies, completes and rebuilds it (`sync`)."""
