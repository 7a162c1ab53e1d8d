"""The 42 API: token store (auth.py) and the paced, retried, counted HTTP client (client.py)."""
