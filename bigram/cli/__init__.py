"""The `bigram` command line (typer)."""
