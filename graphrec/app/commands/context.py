"""What every command receives: the resolved config and the database it works on."""

from __future__ import annotations

from dataclasses import dataclass

import click

from graphrec.core import db
from graphrec.core.config import Config


@dataclass
class Context:
    config: Config

    def database_url(self) -> str:
        return db.database_url(self.config.database)


pass_ctx = click.make_pass_decorator(Context)
