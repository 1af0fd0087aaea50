"""`python -m app.cli`: the `modeldepot` command line."""

import sys

try:
    from app.cli.main import main
except KeyboardInterrupt:  # Ctrl-C while the command line is still being imported: nothing started yet
    sys.exit(0)

main()
