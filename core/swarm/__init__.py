"""SWARM parallelism: villages serving spans of a model's blocks, and the client that routes
micro-batches through them. `core.swarm.model` and `core.swarm.worker` need torch; the rest
does not."""
