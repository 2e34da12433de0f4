"""Flask CLI commands: ``flask create-admin`` and ``flask llm ...``."""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask
from flask.cli import with_appcontext
from sqlalchemy import inspect
from sqlalchemy.exc import SQLAlchemyError

from .accounts import create_user, find_user, password_problem
from .extensions import db
from .llm.cli import llm_cli


def require_migrated_database() -> None:
    """One line naming what to run, instead of a traceback (and, for SQLite, an empty file left behind)."""
    url = db.engine.url
    shown = url.render_as_string(hide_password=True)
    advice = (
        "run `make migrate` first (it reads the same settings as `make run` and this command: "
        "the environment, then .env, then instance/config.py)"
    )
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        if not Path(url.database).exists():
            raise click.ClickException(f"The database {shown} does not exist yet: {advice}.")
    try:
        migrated = inspect(db.engine).has_table("users")
    except SQLAlchemyError as exc:
        raise click.ClickException(f"Cannot reach the database {shown} ({exc.__class__.__name__}).") from None
    if not migrated:
        raise click.ClickException(f"The database {shown} has no tables yet: {advice}.")


@click.command("create-admin")
@click.argument("username")
@click.password_option(help="The admin's password (prompted when omitted).")
@with_appcontext
def create_admin(username: str, password: str) -> None:
    """Create the first admin, or make an existing user an admin."""
    require_migrated_database()
    problem = password_problem(password, username)
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
