"""The composition root: the CLI, its commands and the scheduled jobs. The only code that wires stages."""
