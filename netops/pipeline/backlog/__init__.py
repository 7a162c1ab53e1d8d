"""The backlog tables (users, project_users, ...): detect fills the queue, workers drain it into the tables, reconcile catches silent changes."""
