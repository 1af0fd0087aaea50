"""`python -m app.cli`: the `modeldepot` command line."""

from app.cli.main import main

main()
