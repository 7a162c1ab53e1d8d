"""netops benchmarks: `make bench` (or `python -m bench.run`) regenerates BENCHMARKS.md.

Not part of the normal test run; tests/integration/test_bench_smoke.py runs the bench code at tiny sizes.
"""
