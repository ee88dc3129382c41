"""swarmq: a distributed job queue for multi-GPU LLM experiment runs.

The data path, module by module: config → producer → broker → worker → swarm → model → scorer → store → results.
"""

__version__ = "0.1.0"
