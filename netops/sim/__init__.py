"""A faithful 42 intra API simulator: deterministic data, real HTTP, rate limits and faults."""
