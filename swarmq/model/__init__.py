"""The model behind a small interface (`base.Generator`): llama.cpp (`llama`), stop rules (`stops`), and a
deterministic stand-in for tests and benchmarks (`scripted`)."""
