"""`python -m recmeta ...` (and `torchrun ... -m recmeta train ...`): the CLI."""

from recmeta.cli import main

main()
