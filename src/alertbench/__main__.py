"""Run the alertbench command with `python -m alertbench`."""

from alertbench.cli import main

main()
