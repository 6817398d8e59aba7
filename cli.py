"""Run recmeta from a checkout without installing it: `python cli.py --help`."""

from recmeta.cli import main

if __name__ == "__main__":
    main()
