import os
import subprocess
import sys

import pytest
from sqlalchemy import select

from webapp import create_app
from webapp.config import ENV_KEYS
from webapp.extensions import db
from webapp.models import User
from webapp.paths import INSTANCE_ENV_VAR, PROJECT_ROOT


def test_create_admin_command(runner, app):
    result = runner.invoke(args=["create-admin", "root", "--password", "admin horse battery"])
    assert result.exit_code == 0, result.output
    assert "Created admin root." in result.output
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "root"))
        assert user.is_admin and user.check_password("admin horse battery")
    result = runner.invoke(args=["create-admin", "root2", "--password", "short"])
    assert result.exit_code != 0
    assert "at least 10 characters" in result.output


@pytest.mark.slow  # starts a process
def test_create_admin_on_a_database_that_is_not_migrated_says_what_to_run(tmp_path):
    """As in a new shell: `flask --app wsgi create-admin`, no DATABASE_URL, nothing migrated yet."""
    env = {key: value for key, value in os.environ.items() if key not in ENV_KEYS}
    env[INSTANCE_ENV_VAR] = str(tmp_path / "instance")
    command = [
        sys.executable,
        "-m",
        "flask",
        "--app",
        "wsgi",
        "create-admin",
        "root",
        "--password",
        "admin horse battery",
    ]
    result = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr, result.stderr
    assert "run `make migrate` first" in result.stderr and "does not exist yet" in result.stderr
    assert not (tmp_path / "instance" / "switchboard.db").exists()  # no empty database left behind


def test_create_admin_on_a_database_without_tables_says_what_to_run(instance_path, tmp_path, redis_url):
    (tmp_path / "empty.db").touch()
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}", "REDIS_URL": redis_url})
    result = app.test_cli_runner().invoke(args=["create-admin", "root", "--password", "admin horse battery"])
    assert result.exit_code == 1 and "has no tables yet" in result.output and "make migrate" in result.output
