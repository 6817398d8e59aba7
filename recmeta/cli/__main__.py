"""`python -m recmeta.cli`."""

from recmeta.cli import main

main()
