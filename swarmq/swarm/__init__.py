"""The context-accumulation swarm: its state as values (`state`), routing decisions (`routing`), the state in
Redis (`redis`, Lua in `lua/`), and keeping Redis in step with Postgres (`sync`)."""
