"""The LLM layer stands alone: a plain script imports and uses it without Flask or the rest of the app."""

import json
import os
import subprocess
import sys

import pytest

from webapp.paths import PROJECT_ROOT

SCRIPT = """
import json, sys
import webapp.llm as llm
loaded = sorted(name for name in sys.modules if name == "flask" or name.startswith(("flask.", "flask_", "werkzeug")))
app_modules = sorted(name for name in sys.modules if name.startswith("webapp.") and not name.startswith("webapp.llm"))
llm.set_alias("parrot", "echo")
reply = llm.get_model("parrot").prompt("hello from a script", delay=0).text()
print(json.dumps({"loaded": loaded, "app_modules": app_modules, "reply": reply, "models": list(llm.get_aliases())}))
"""


@pytest.mark.slow  # starts a process
def test_a_plain_script_uses_webapp_llm_without_flask(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "GEMINI_", "INHOUSE_", "LLM_"))}
    env["SWITCHBOARD_INSTANCE_PATH"] = str(tmp_path / "instance")
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["loaded"] == [], f"importing webapp.llm pulled in {report['loaded']}"
    assert report["app_modules"] == [], f"webapp.llm imports the app: {report['app_modules']}"
    assert "hello from a script" in report["reply"]
    assert json.loads((tmp_path / "instance" / "aliases.json").read_text()) == {"parrot": "echo"}
