"""CLI commands of the feeds: simulate, ingest, bench ingest (registered into `scenic-twin`)."""
from __future__ import annotations


def register(sub, bench_sub) -> None:
    """Add this package's subcommands to the `scenic-twin` parser."""
