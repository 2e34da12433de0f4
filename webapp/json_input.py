"""Strict parsing of JSON request bodies: what cannot be stored, sent on or answered is refused up front.

Python's ``json`` accepts things nothing downstream can handle: lone UTF-16 surrogates
(``"\\ud800"``) that no UTF-8 encoder takes, ``NaN`` and ``Infinity`` (and ``1e999``, which
becomes infinity), and nesting deep enough to exhaust the recursion limit. Each is a
``ValueError`` here, so ``request.get_json()`` treats it as bad JSON: a 400, never a 5xx.
"""

from __future__ import annotations

import json
import math

from flask.json.provider import DefaultJSONProvider

MAX_DEPTH = 64


class InvalidJSON(ValueError):
    """A body that is not JSON this service accepts; ``str()`` says why, for the client."""


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidJSON(f"The number {text[:40]} is too large.")
    return value


def _no_constants(name: str):
    raise InvalidJSON(f"{name} is not a valid JSON number.")


def _check(value) -> None:
    """Depth and text checks, without recursion (the value may be deeply nested)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise InvalidJSON(f"The JSON is nested more than {MAX_DEPTH} levels deep.")
            if isinstance(item, dict):
                for key, child in item.items():
                    _check_text(key)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidJSON("The JSON contains invalid Unicode (a lone surrogate escape such as \\ud800).") from None


def loads(data: str | bytes):
    try:
        value = json.loads(data, parse_float=_finite, parse_constant=_no_constants)
    except RecursionError:
        raise InvalidJSON(f"The JSON is nested more than {MAX_DEPTH} levels deep.") from None
    except UnicodeDecodeError:
        raise InvalidJSON("The body is not valid UTF-8.") from None
    _check(value)
    return value


class StrictJSONProvider(DefaultJSONProvider):
    """The app's JSON provider: responses as Flask makes them, request bodies parsed strictly."""

    def loads(self, s: str | bytes, **kwargs):
        return loads(s)
