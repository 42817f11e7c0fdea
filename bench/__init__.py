"""`make bench`: throughput, latency, training and memory figures of seenext, with their conditions.

Not part of `make test`. `python -m bench.run` runs every measurement on this machine in one go,
prints the table and writes docs/benchmarks.md. Each module measures one thing and returns a plain
result dataclass; `bench.report` turns them into the table and the PASS/MISS lines of the targets.
"""
