"""Tools that the workflow tests import as ``module:function``."""

import threading
import time

from plait.errors import ConfigError


def shout(text: str) -> str:
    """Upper-case a text.

    Args:
        text: the text.
    """
    return text.upper()


def slow_count(n: int) -> int:
    """Sleep a long while, then return n (for interrupt tests).

    Long enough that a Ctrl-C sent on a loaded machine still lands mid-step: an
    interrupted run never waits for this thread.

    Args:
        n: the number.
    """
    time.sleep(120)
    return n


def misconfigured(text: str) -> str:
    """Fail the way a tool with a bad setup does (for error-path tests).

    Args:
        text: ignored.
    """
    raise ConfigError("tool 'misconfigured': API key setting PLAIT_TEST_KEY is not set")


STUCK = threading.Event()
"""What ``block_forever`` waits on; nothing sets it in a run (a test may, to clean up)."""


def block_forever(n: int) -> int:
    """Block like a read of a FIFO nobody writes to: the call never returns by itself.

    Args:
        n: returned if the block is ever lifted.
    """
    STUCK.wait()
    return n


def echo(text: str) -> str:
    """Return the text as it is.

    Args:
        text: the text.
    """
    return text


def place(city: str) -> dict[str, str]:
    """A record naming a city (a JSON answer).

    Args:
        city: the city.
    """
    return {"city": city}
