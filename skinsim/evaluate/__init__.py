"""Scoring a run: retrieval metrics as plain functions (metrics), a run's reports, queries val and search space
test, both ways, same-lesion (report: `python -m skinsim.evaluate RUN`), and the 2-D map of its embeddings
(projection).

Floor 4: may import search, model, data, runs and compute.
"""
