"""Tools that the workflow tests import as ``module:function``."""

import time


def shout(text: str) -> str:
    """Upper-case a text.

    Args:
        text: the text.
    """
    return text.upper()


def slow_count(n: int) -> int:
    """Sleep a while, then return n (for interrupt tests).

    Args:
        n: the number.
    """
    time.sleep(6)
    return n
