"""The OpenAPI 3.1 description of ``/``, ``/api/`` and ``/v1/``: the data file openapi.yaml beside this module,
served at /api/openapi.json with this server's URL (and shown at /api/docs)."""

from __future__ import annotations

from copy import deepcopy
from functools import cache
from pathlib import Path

import yaml
from flask import request


@cache
def _document() -> dict:
    return yaml.safe_load(Path(__file__).with_name("openapi.yaml").read_text(encoding="utf-8"))


def openapi_spec() -> dict:
    spec = deepcopy(_document())
    spec["servers"] = [{"url": request.host_url.rstrip("/")}]
    return spec
