"""CLI commands, one module per stage; `register` adds them all to the `graphrec` group."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    # Imported here, not at module level: each stage's module imports only what its commands need.
    from graphrec.app.commands import (
        etl_commands,
        evaluate_commands,
        serve_commands,
        serving_commands,
        train_commands,
    )

    for module in (etl_commands, train_commands, evaluate_commands, serving_commands, serve_commands):
        for command in module.COMMANDS:
            cli.add_command(command)
