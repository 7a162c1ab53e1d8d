"""`python -m netops` = the `netops` command."""

from netops.cli import main

main()
