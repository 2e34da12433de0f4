"""Where Switchboard keeps its runtime files.

One environment variable, ``SWITCHBOARD_INSTANCE_PATH``, moves the whole instance
folder (database, secret key, aliases, Valkey data) for installs outside the
repository and for tests. Both the Flask app and the plain-Python ``webapp.llm``
API resolve it here so they always agree.
"""

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
INSTANCE_ENV_VAR = "SWITCHBOARD_INSTANCE_PATH"


def instance_path() -> Path:
    configured = os.environ.get(INSTANCE_ENV_VAR)
    path = Path(configured).expanduser().resolve() if configured else PROJECT_ROOT / "instance"
    return path


def ensure_instance_path() -> Path:
    path = instance_path()
    path.mkdir(parents=True, exist_ok=True)
    # Secrets, the database and the Valkey socket live here: owner only.
    try:
        path.chmod(0o700)
    except PermissionError:
        pass
    return path


def default_redis_socket() -> Path:
    return instance_path() / "valkey.sock"


def default_redis_url() -> str:
    return f"unix://{default_redis_socket()}"
