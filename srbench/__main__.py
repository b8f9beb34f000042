"""``python -m srbench`` (what ``torchrun -m srbench train ...`` runs)."""

from srbench.cli import main

main()
