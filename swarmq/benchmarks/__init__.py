"""Benchmarks as plugins: each module implements `base.Benchmark` (rows, prompts, examples, scoring,
export); `registry` maps the names experiment files use to them."""
