"""The application keys as the API layer and its views use them.

The keys are read and checked once, when the settings are built (netops/credentials.py, the
parsing; `settings.keys`, `settings.budget`, `settings.require_keys()`). What is left here are the
per-key rows `netops status`, the metrics and the dashboard show; the other names are kept for
the callers that still import them from here.
"""

from __future__ import annotations

from netops.config import ConfigError, Settings
from netops.credentials import DEFAULT_LABEL, ApiKey, Budget, check_private

__all__ = ["DEFAULT_LABEL", "ApiKey", "Budget", "Configured", "budget", "check_private",
           "load_keys", "read_keys"]


def load_keys(settings: Settings, required: bool = True) -> list[ApiKey]:
    """settings.require_keys(): the keys read when the settings were built, or ConfigError
    naming every bad one (one line each)."""
    return settings.require_keys(required)


#: What one evaluation read of the configured keys: the keys, or the error naming every bad one.
#: Read once (read_keys) and handed to budget() and key_rows(), so they judge the same read.
Configured = list[ApiKey] | ConfigError


def read_keys(settings: Settings) -> Configured:
    """load_keys() for the views (none required), its error returned instead of raised: a view
    shows a bad key on its key lines, it does not stop."""
    try:
        return load_keys(settings, required=False)
    except ConfigError as exc:
        return exc


def budget(settings: Settings, keys: Configured | None = None) -> Budget:
    """settings.budget, or the budget of `keys` (what read_keys() returned): one key's
    configured budget when there is none or they cannot be read."""
    if keys is None:
        return settings.budget
    usable = [] if isinstance(keys, ConfigError) else keys
    return Budget.of(usable, settings.rate_per_second, settings.rate_per_hour)
