"""``python -m amberwatch``: the command line."""

from amberwatch.cli import main

main()
