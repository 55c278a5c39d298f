"""The Telegram stand-in refuses a URL button's link where tdlib does (LinkManager::check_link,
whose cases are tdlib's test/link.cpp), so a keyboard Telegram would refuse is refused here too."""

from __future__ import annotations

import pytest

from sandbox.telegram import button_url_problem, inline_keyboard


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://github.com/owner/bot/actions/runs/77", ""),
        ("http://127.0.0.1:8080/x", ""),
        ("http://[2001:db8:0:0:0:ff00:42:8329]", ""),  # an IPv6 literal needs no dot
        ("google.com", ""),  # no scheme: read as http
        ("tg://resolve?domain=x_bot", ""),
        ("http://localhost", "Wrong HTTP URL"),
        ("https://ghe/owner/bot", "Wrong HTTP URL"),
        ("grammy", "Wrong HTTP URL"),
        ("sftp://google.com", "Unsupported URL protocol"),
        ("javascript://alert(1)", "Unsupported URL protocol"),
        ("http://google.com:99999", "Wrong port number specified in the URL"),
    ],
)
def test_button_links_telegram_refuses(url, problem):
    assert button_url_problem(url) == problem


def test_a_refused_button_refuses_the_whole_keyboard_naming_the_link():
    markup, refused = inline_keyboard({"inline_keyboard": [[{"text": "Open", "url": "http://ghe/run"}]]})
    assert markup is None and refused == "inline keyboard button URL 'http://ghe/run' is invalid: Wrong HTTP URL"
