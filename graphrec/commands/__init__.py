"""CLI commands, one module per stage; `register` adds them all to the `graphrec` group."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    from graphrec.commands import etl_commands

    for command in etl_commands.COMMANDS:
        cli.add_command(command)
    from graphrec.commands import serve_commands

    for command in serve_commands.COMMANDS:
        cli.add_command(command)
    from graphrec.commands import train_commands

    for command in train_commands.COMMANDS:
        cli.add_command(command)
    from graphrec.commands import evaluate_commands

    for command in evaluate_commands.COMMANDS:
        cli.add_command(command)
    from graphrec.commands import serving_commands

    for command in serving_commands.COMMANDS:
        cli.add_command(command)
