"""Postgres, the source of truth: engine and migrations (`db`, `migrations/`), tables (`schema`), client
factories (`services`), embedded servers, and the shared outcome and experiment lookups."""
