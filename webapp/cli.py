"""Flask CLI commands: ``flask create-admin`` and ``flask llm ...``."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import with_appcontext

from .accounts import create_user, find_user, password_problem
from .extensions import db
from .llm.cli import llm_cli


@click.command("create-admin")
@click.argument("username")
@click.password_option(help="The admin's password (prompted when omitted).")
@with_appcontext
def create_admin(username: str, password: str) -> None:
    """Create the first admin, or make an existing user an admin."""
    problem = password_problem(password)
    if problem:
        raise click.ClickException(f"The password is not accepted: {problem}")
    user = find_user(username)
    if user is None:
        user = create_user(username, password, role="admin")
        message = f"Created admin {user.username}."
    else:
        user.role = "admin"
        user.set_password(password)
        message = f"{user.username} is now an admin; password updated."
    db.session.commit()
    click.echo(message)


def register_commands(app: Flask) -> None:
    app.cli.add_command(create_admin)
    app.cli.add_command(llm_cli)
