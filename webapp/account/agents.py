"""Readable names for the clients on the sessions page: "Chrome on Linux", not the raw user-agent string."""

from __future__ import annotations

from functools import lru_cache

from ua_parser import parse

from . import bp

UNKNOWN = "Other"


@lru_cache(maxsize=1024)
def readable_agent(user_agent: str | None) -> str:
    """Browser (or program) and system, as ua-parser names them; the raw string, shortened, when it knows neither."""
    if not user_agent:
        return "Unknown client"
    # ua-parser compiles its rules on the first call in a process (about two seconds), then answers in a millisecond.
    result = parse(user_agent)
    browser = result.user_agent.family if result.user_agent and result.user_agent.family != UNKNOWN else None
    system = result.os.family if result.os and result.os.family != UNKNOWN else None
    if browser and system:
        return f"{browser} on {system}"
    if browser or system:
        return browser or system
    return user_agent if len(user_agent) <= 60 else user_agent[:59] + "…"


bp.add_app_template_filter(readable_agent, "readable_agent")
