"""llama-cpp-python's OpenAI-compatible server, loading weights the way plait's engine does.

``python -m plait.backends.local._llama_server ARGS`` takes ``llama_cpp.server``'s
own arguments. The model is loaded without llama.cpp's repacked CPU weight
buffers (see :func:`._loaded.plain_weight_buffers`): with them, llama-cpp-python
0.3.36 crashes on the first multi-token batch on some CPUs, and its server with
it. The tests and ``benchmarks/function_calling.py`` start the server this way.
"""

from __future__ import annotations

import runpy
import sys

from ._loaded import plain_weight_buffers


def main() -> None:
    """Run ``llama_cpp.server`` with this process's arguments."""
    sys.argv[0] = "llama_cpp.server"
    with plain_weight_buffers():
        runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
