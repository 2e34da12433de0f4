import os

import pytest

from webapp import create_app
from webapp.config import load_config, normalize_database_url


def test_secret_key_is_generated_once_into_the_instance_folder(instance_path):
    first = load_config()["SECRET_KEY"]
    assert len(first) >= 40
    key_file = instance_path / "secret_key"
    assert key_file.read_text() == first
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert load_config()["SECRET_KEY"] == first


def test_environment_beats_instance_config(instance_path, monkeypatch):
    instance_path.mkdir(parents=True, exist_ok=True)
    (instance_path / "config.py").write_text('OPENAI_MODEL = "from-instance"\nDEFAULT_LLM_MODEL = "from-instance"\n')
    monkeypatch.setenv("OPENAI_MODEL", "from-env")
    config = load_config()
    assert config["OPENAI_MODEL"] == "from-env"
    assert config["DEFAULT_LLM_MODEL"] == "from-instance"


def test_defaults_live_in_the_instance_folder(instance_path):
    config = load_config()
    assert config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{instance_path / 'switchboard.db'}"
    assert config["REDIS_URL"] == f"unix://{instance_path / 'valkey.sock'}"
    assert config["OPENAI_MODEL"] == "gpt-4o"
    assert config["DEFAULT_LLM_MODEL"] == "echo"


def test_llm_models_json_from_environment(instance_path, monkeypatch):
    monkeypatch.setenv("LLM_MODELS", '{"ollama_chat/llama3": {"api_base": "http://127.0.0.1:11434"}}')
    assert load_config()["LLM_MODELS"] == {"ollama_chat/llama3": {"api_base": "http://127.0.0.1:11434"}}
    monkeypatch.setenv("LLM_MODELS", "{not json")
    with pytest.raises(ValueError, match="LLM_MODELS must be valid JSON"):
        load_config()


@pytest.mark.parametrize("url", ["postgres://u:p@h/db", "postgresql://u:p@h/db"])
def test_postgres_urls_use_psycopg3(url):
    assert normalize_database_url(url) == "postgresql+psycopg://u:p@h/db"


def test_instance_folder_moves_with_one_variable(instance_path):
    app = create_app({"TESTING": True})
    assert app.instance_path == str(instance_path)
    assert os.path.isdir(instance_path)


def test_the_configuration_page_lists_every_setting_as_declared():
    """docs/configuration.md carries the table generated from webapp.config.SETTINGS (python -m webapp.config)."""
    from webapp.config import DOCS_END, DOCS_START, markdown_table
    from webapp.paths import PROJECT_ROOT

    page = (PROJECT_ROOT / "docs" / "configuration.md").read_text()
    table = page.split(DOCS_START, 1)[1].split(DOCS_END, 1)[0]
    assert table == markdown_table(), "docs/configuration.md is stale: run `python -m webapp.config --write`"


def test_every_setting_is_read_with_its_kind(instance_path, monkeypatch):
    from webapp.config import SETTINGS, load_config

    samples = {"int": ("7", 7), "float": ("1.5", 1.5), "bool": ("true", True), "json": ('{"a": 1}', {"a": 1})}
    for setting in SETTINGS:
        if setting.kind in samples:
            monkeypatch.setenv(setting.name, samples[setting.kind][0])
    config = load_config()
    for setting in SETTINGS:
        if setting.kind in samples:
            assert config[setting.name] == samples[setting.kind][1], setting.name


def test_passwords_are_hashed_with_full_cost_scrypt_unless_the_setting_says_otherwise(instance_path, monkeypatch):
    from webapp.models import User

    assert load_config()["PASSWORD_HASH"] == "scrypt:32768:8:1"
    app = create_app({"PASSWORD_HASH": "scrypt:256:8:1"})
    with app.app_context():
        user = User(username="hash")
        user.set_password("correct horse battery")
        assert user.password_hash.startswith("scrypt:256:8:1$") and user.check_password("correct horse battery")
    monkeypatch.setenv("PASSWORD_HASH", "md5")
    with pytest.raises(ValueError, match="PASSWORD_HASH .md5. does not work"):
        load_config()
    monkeypatch.setenv("PASSWORD_HASH", "scrypt:16:8:1")  # too little memory for OpenSSL's scrypt
    with pytest.raises(ValueError, match="does not work"):
        load_config()
