"""Strategy options (`NAME:key=value`): parsed, validated with one-line errors, part of the spec."""
import pytest

from ttsload.strategies import options
from ttsload.strategies.registry import UnknownStrategy, resolve


def test_options():
    options.register("demo", "a demo option", int)
    try:
        s = resolve("prefork+mmap:demo=3")
        assert (s.topology, s.loader, s.option_map) == ("prefork", "mmap", {"demo": 3})
        assert resolve("singleton").options == ()
        with pytest.raises(UnknownStrategy, match="unknown option 'nope'"):
            resolve("singleton:nope=1")
        with pytest.raises(UnknownStrategy, match="demo='x'"):
            resolve("singleton:demo=x")
        with pytest.raises(UnknownStrategy, match="not key=value"):
            resolve("singleton:demo")
    finally:
        del options.OPTIONS["demo"]
