"""Database: embedded server, migrations, loader, quality checks."""
