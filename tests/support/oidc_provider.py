"""A real OpenID Connect provider for the tests: Node's certified ``oidc-provider`` (tests/support/oidc/).

``OIDCProvider`` runs ``node provider.mjs`` on 127.0.0.1 and rewrites its state file to change the identity
provider's side (accounts, their groups). ``authorize`` signs in on the provider's own pages over HTTP, as a
browser would, and returns where the provider sends the browser back (the app's callback with code and state).
If Node or the package cannot be installed, the test fails with that reason: it is never skipped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
import requests

PROVIDER_DIR = Path(__file__).parent / "oidc"
CLIENT_ID = "switchboard"
CLIENT_SECRET = "client-secret-for-tests-only"
START_TIMEOUT = 30


def ensure_installed() -> str:
    """The path of node, with the provider's package installed (``npm ci``, as .ci/run does); fails the test."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js is required for the single sign-on tests (apt-get install nodejs npm)", pytrace=False)
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail(
                "npm is required to install the test OpenID Connect provider (apt-get install npm)", pytrace=False
            )
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=PROVIDER_DIR, capture_output=True, text=True, timeout=300
        )
        if result.returncode != 0:
            pytest.fail(f"npm ci of the test OpenID Connect provider failed:\n{result.stderr[-2000:]}", pytrace=False)
    return node


class OIDCProvider:
    def __init__(self):
        self.workdir = Path(tempfile.mkdtemp(prefix="sb-oidc-"))
        self.state_file = self.workdir / "state.json"
        self.state = {
            "clients": [{"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}],
            "accounts": {},
            "id_token_audience": None,
            "userinfo_only_claims": [],
        }
        self._write()
        self.process = None
        self.issuer = None

    def _write(self):
        temporary = self.state_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.state))
        os.replace(temporary, self.state_file)  # the provider never reads half a file

    def start(self):
        node = ensure_installed()
        self.log = open(self.workdir / "stderr.log", "w+")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [node, "provider.mjs", str(self.state_file)],
            cwd=PROVIDER_DIR,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        line = self.process.stdout.readline()  # "listening <issuer>", or nothing when it died
        if not line.startswith("listening "):
            self.process.wait(timeout=10)
            reason = self.stderr()
            self.stop()
            pytest.fail(f"the test OpenID Connect provider did not start: {line!r} {reason}", pytrace=False)
        self.issuer = line.split()[1]
        return self

    def stderr(self) -> str:
        self.log.seek(0)
        return self.log.read()[-2000:]

    def stop(self):
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process.stdout.close()
            self.log.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- the identity provider's side ---------------------------------------------------------

    def set_account(self, login: str, **claims):
        self.state["accounts"][login] = claims
        self._write()

    def reset(self):
        self.state["accounts"] = {}
        self.state["id_token_audience"] = None
        self.state["userinfo_only_claims"] = []
        self._write()

    def issue_tokens_for_audience(self, audience: str | None):
        self.state["id_token_audience"] = audience
        self._write()

    def claims_from_userinfo_only(self, *names: str):
        self.state["userinfo_only_claims"] = list(names)
        self._write()

    def app_config(self, **extra) -> dict:
        return {
            "OIDC_ISSUER": self.issuer,
            "OIDC_CLIENT_ID": CLIENT_ID,
            "OIDC_CLIENT_SECRET": CLIENT_SECRET,
            "OIDC_SCOPES": "openid email profile groups",
            **extra,
        }

    # -- a browser at the provider --------------------------------------------------------------

    def authorize(self, authorization_url: str, login: str) -> str:
        """Sign in as ``login`` on the provider's pages; the URL it sends the browser back to (the app's callback)."""
        browser = requests.Session()
        page = browser.get(authorization_url, timeout=10)
        page.raise_for_status()
        action = re.search(r'<form[^>]*action="([^"]+)"', page.text)
        assert action, f"no sign-in form at the provider: {page.text[:500]}"
        response = browser.post(
            urljoin(page.url, action.group(1)),
            data={"prompt": "login", "login": login, "password": "any"},
            allow_redirects=False,
            timeout=10,
        )
        provider_host = urlsplit(self.issuer).netloc
        for _ in range(10):
            assert response.status_code in (302, 303), f"{response.status_code}: {response.text[:500]}"
            location = urljoin(response.url, response.headers["Location"])
            if urlsplit(location).netloc != provider_host:
                return location
            response = browser.get(location, allow_redirects=False, timeout=10)
        raise AssertionError("the provider never sent the browser back")


def callback_path(location: str) -> str:
    """The app-relative part of the provider's redirect (the Flask test client takes paths)."""
    parts = urlsplit(location)
    return f"{parts.path}?{parts.query}"
