"""netops: keeps a PostgreSQL mirror of the 42 intra API in sync, observably."""

__version__ = "0.1.0"
