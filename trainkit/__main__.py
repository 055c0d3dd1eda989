"""`python -m trainkit` (and `torchrun -m trainkit`) runs the CLI, as the `trainkit` console script does."""

from trainkit.cli import console

console()
