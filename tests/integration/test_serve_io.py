"""``tradelane serve``'s HTTP parser and event loop: httptools and uvloop when installed, else h11 and
asyncio with a sentence saying why; unknown names refused."""

from __future__ import annotations

import importlib.util

import pytest

from tradelane.web.app import ServerIO, server_io


def test_the_fast_parser_and_loop_are_chosen_when_installed() -> None:
    assert server_io() == ServerIO("httptools", "uvloop", ())
    assert server_io("h11", "asyncio") == ServerIO("h11", "asyncio", ())


def test_a_missing_package_falls_back_with_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in {"httptools", "uvloop"} else real(name, *a),
    )
    chosen = server_io()
    assert (chosen.http, chosen.loop) == ("h11", "asyncio")
    assert len(chosen.fallbacks) == 2
    assert "httptools is not installed: using h11" in chosen.fallbacks[0]
    assert "uvloop is not installed: using asyncio" in chosen.fallbacks[1]


@pytest.mark.parametrize(("http", "loop"), [("h2", "uvloop"), ("httptools", "trio")])
def test_unknown_names_are_refused(http: str, loop: str) -> None:
    with pytest.raises(ValueError, match="must be one of"):
        server_io(http, loop)
