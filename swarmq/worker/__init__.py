"""The GPU worker: bootstrap and the Celery task (`main`), one job (`runner`, decisions in `planning`), model
choice (`loading`), housekeeping, shutdown, the per-GPU supervisor and GPU discovery."""
