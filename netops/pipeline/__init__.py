"""What to sync: the stable tables (stable/: phases derived from the catalog, one transaction each) and
the backlog tables (backlog/: detect fills a durable queue, workers drain it, reconcile catches
silent changes)."""
