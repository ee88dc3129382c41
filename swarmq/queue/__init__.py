"""Moving jobs: the Celery transport (`broker`), the producer, the jobs-table state machine (`jobs`),
release-and-publish (`dispatch`), the reaper, and riding out outages (`retry`)."""
