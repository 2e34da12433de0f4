"""aliases.json: created when missing, overwritten when invalid, atomic and
safe under concurrent writers (threads and processes)."""

import json
import subprocess
import sys
import threading

import pytest

import webapp.llm as llm
from webapp.llm.aliases import aliases_path


def test_file_created_when_missing(llm_instance):
    assert not llm_instance.exists()
    llm.set_alias("turbo", "gpt-3.5-turbo")
    assert json.loads((llm_instance / "aliases.json").read_text()) == {"turbo": "gpt-3.5-turbo"}


def test_invalid_json_is_overwritten(llm_instance):
    llm_instance.mkdir(parents=True)
    (llm_instance / "aliases.json").write_text("{not json")
    assert llm.get_model("echo").model_id == "echo"  # a broken file does not break lookups
    llm.set_alias("e", "echo")
    assert json.loads((llm_instance / "aliases.json").read_text()) == {"e": "echo"}


def test_non_object_json_is_overwritten(llm_instance):
    llm_instance.mkdir(parents=True)
    (llm_instance / "aliases.json").write_text("[1, 2]")
    llm.set_alias("e", "echo")
    assert json.loads((llm_instance / "aliases.json").read_text()) == {"e": "echo"}


def test_unknown_target_is_rejected(llm_instance):
    with pytest.raises(llm.UnknownModelError):
        llm.set_alias("x", "no-such-model")
    assert not (llm_instance / "aliases.json").exists()


def test_user_alias_overrides_provider_alias():
    assert llm.get_model("4o").model_id == "gpt-4o"
    llm.set_alias("4o", "gpt-4o-mini")
    assert llm.get_model("4o").model_id == "gpt-4o-mini"
    assert llm.get_aliases()["4o"] == "gpt-4o-mini"
    llm.remove_alias("4o")
    assert llm.get_model("4o").model_id == "gpt-4o"


def test_remove_missing_alias_raises_key_error_and_keeps_file(llm_instance):
    llm.set_alias("keep", "echo")
    before = (llm_instance / "aliases.json").read_text()
    with pytest.raises(KeyError):
        llm.remove_alias("nope")
    with pytest.raises(KeyError):
        llm.remove_alias("4o")  # provider aliases are not the user's to remove
    assert (llm_instance / "aliases.json").read_text() == before


def test_writes_leave_no_temporary_files(llm_instance):
    for i in range(5):
        llm.set_alias(f"a{i}", "echo")
    names = sorted(p.name for p in llm_instance.iterdir())
    assert names == ["aliases.json", "aliases.json.lock"] or names == [
        "aliases.json",
        "aliases.json.lock",
        "secret_key",
    ]


def test_concurrent_thread_writers_lose_nothing():
    errors = []

    def writer(n):
        try:
            for i in range(15):
                llm.set_alias(f"t{n}-{i}", "echo")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    aliases = json.loads(aliases_path().read_text())
    assert {f"t{n}-{i}" for n in range(6) for i in range(15)} <= set(aliases)


@pytest.mark.slow  # starts a process
def test_concurrent_process_writers_lose_nothing(llm_instance):
    script = (
        "import sys, webapp.llm as llm\n"
        "n = sys.argv[1]\n"
        "for i in range(15):\n"
        "    llm.set_alias(f'p{n}-{i}', 'echo')\n"
        "    llm.get_aliases()\n"  # readers never see a broken file
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(n)], stderr=subprocess.PIPE, text=True) for n in range(4)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    aliases = json.loads(aliases_path().read_text())
    assert {f"p{n}-{i}" for n in range(4) for i in range(15)} == set(aliases)
