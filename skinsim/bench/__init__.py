"""Benchmarks that print the tables of docs/results.md, and the cheap screen that comes before a full run:
retrieval quality by recipe and split (retrieval: `python -m skinsim.benchmark`), metric-learning losses on frozen
features (screen: `python -m skinsim.screen`), runs of one split joined into an ensemble (ensemble:
`python -m skinsim.bench.ensemble`), nearest-neighbour search speed (search_speed), the dashboard in a
real browser (dashboard_speed) and under several users (dashboard_load).

Floor 7, the top: may import every other package.
"""
