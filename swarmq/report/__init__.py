"""What users read: results and statistics (`queries`, `results`, `stats`), renderings (`render`, `plots`),
exports, progress, replay, and the live views of Redis (`swarm_state`, `workers`)."""
