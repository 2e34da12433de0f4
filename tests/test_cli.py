from sqlalchemy import select

from webapp.extensions import db
from webapp.models import User


def test_create_admin_command(runner, app):
    result = runner.invoke(args=["create-admin", "root", "--password", "adminpassword"])
    assert result.exit_code == 0, result.output
    assert "Created admin root." in result.output
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "root"))
        assert user.is_admin and user.check_password("adminpassword")
    result = runner.invoke(args=["create-admin", "root2", "--password", "short"])
    assert result.exit_code != 0
    assert "at least 8 characters" in result.output
