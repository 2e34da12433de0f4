"""Session rows name the browser and system a user-agent string stands for, through ua-parser."""

import pytest

from webapp.account.agents import readable_agent


@pytest.mark.parametrize(
    ("user_agent", "expected"),
    [
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36",
            "Chrome on Linux",
        ),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0", "Firefox on Windows"),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            "Version/17.5 Mobile/15E148 Safari/604.1",
            "Mobile Safari on iOS",
        ),
        ("curl/8.5.0", "curl"),
        ("OpenAI/Python 1.57.0", "OpenAI/Python 1.57.0"),  # unknown to the parser: the string itself
        ("x" * 200, "x" * 59 + "…"),
        (None, "Unknown client"),
        ("", "Unknown client"),
    ],
)
def test_readable_agent(user_agent, expected):
    assert readable_agent(user_agent) == expected
