"""The front ends: the ``plait`` command, the REPL (:mod:`plait.cli.repl`) and HTML run
reports (:mod:`plait.cli.report`).

This is the top layer: it may import every other part of plait, and nothing in
plait imports it.
"""

from ._main import main

__all__ = ["main"]
