"""Switchboard: a self-hosted, multi-provider LLM chat service.

``create_app`` lives in :mod:`webapp.app`; importing this package does not import
Flask, so the LLM layer (``webapp.llm``) and the other plain modules load without it.
"""


def create_app(test_config: dict | None = None):
    """The Flask app (see :func:`webapp.app.create_app`)."""
    from .app import create_app as build  # imported here: `import webapp.llm` must not pull in Flask

    return build(test_config)
