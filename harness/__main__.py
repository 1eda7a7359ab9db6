"""`python -m ent_harness` is the same as `ent`."""

from .cli import main

main()
