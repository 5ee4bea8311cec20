"""`python -m edge`: the same as the `qc-edge` command."""

from edge.cli import main

main()
