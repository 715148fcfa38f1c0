"""graphrec: the shared core (config, database, artifact formats) and the CLI."""

__version__ = "0.1.0"
