"""qflow place and route (graywolf, qrouter), DEF/physical data and heatmaps."""
