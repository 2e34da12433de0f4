import pytest

from tests.support.admin import make_user


@pytest.fixture
def admin(app, auth):
    """Signs the test client in as the admin "root"; returns the admin's id."""
    admin_id = make_user(app, "root", role="admin")
    auth.login("root")
    return admin_id
