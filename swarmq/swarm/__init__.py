"""The context-accumulation swarm: its state as values (`state`), routing decisions (`routing`) and the
state in Redis (`redis`, Lua in `lua/`). Keeping Redis in step with Postgres is one layer up, in
`swarmq.streams`."""
