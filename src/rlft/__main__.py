"""``python -m rlft`` runs the ``rlft`` command."""

from rlft.cli import main

main()
