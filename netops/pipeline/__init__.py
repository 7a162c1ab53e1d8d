"""What to sync: the eight stable phases as data (stable.py) and phase 09 (detect.py, backlog.py)."""
