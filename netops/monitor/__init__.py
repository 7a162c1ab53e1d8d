"""Observability: status, metrics, alerts, data quality and the dashboard. Never calls the API."""
