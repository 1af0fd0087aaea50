"""The command line: `modeldepot` (typer), its output, following a download or the log, process wiring."""
