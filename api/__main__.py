"""`python -m api` runs the linkcall CLI."""

from api.cli import main

main()
