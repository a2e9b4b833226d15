"""Loading GGUF models once per process and rendering their chat templates."""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plait.errors import ModelLoadError
from plait.messages import Message

from ._engine import Engine, EngineOptions
from ._guidance import lltokenizer_from_llama
from ._model_file import check_gguf
from ._runtime import open_llama

__all__ = ["LoadedModel", "load_model", "plain_weight_buffers"]

# Fallback for GGUF files that carry no chat template: ChatML, which most small
# instruction-tuned models (SmolLM2 included) were trained on.
_CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@dataclass
class LoadedModel:
    """A llama.cpp model in memory and the engine that serves all its requests.

    ``llama`` is used for its weights, vocabulary and chat template only; the
    engine owns the context that generates.
    """

    path: Path
    llama: Any
    n_ctx: int
    engine: Engine
    _formatter: Any = None
    _render_lock: threading.Lock = field(default_factory=threading.Lock)
    _lltokenizer: Any = None

    def guidance_tokenizer(self) -> Any:
        """The model's vocabulary as an llguidance tokenizer (built once, about 0.3 s)."""
        with self._render_lock:
            if self._lltokenizer is None:
                own = getattr(self.llama, "guidance_tokenizer", None)  # a stand-in's own
                self._lltokenizer = own() if own is not None else lltokenizer_from_llama(self.llama)
            return self._lltokenizer

    @property
    def name(self) -> str:
        return self.path.stem

    def render(self, messages: list[Message]) -> list[int]:
        """Apply the model's chat template and tokenize, ready to generate a reply."""
        with self._render_lock:
            if self._formatter is None:
                self._formatter = self._make_formatter()
        dicts = [{"role": m.role, "content": getattr(m, "content", None) or ""} for m in messages]
        prompt = self._formatter(messages=dicts).prompt
        bos = self._token_text(self.llama.token_bos())
        if bos and prompt.startswith(bos):
            # tokenize() adds BOS itself when the model wants one.
            prompt = prompt[len(bos) :]
        return list(self.llama.tokenize(prompt.encode(), add_bos=True, special=True))

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return bytes(self.llama.detokenize([token], special=True)).decode("utf-8", "replace")

    def _make_formatter(self) -> Any:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = self.llama.metadata.get("tokenizer.chat_template") or _CHATML
        return Jinja2ChatFormatter(
            template=template,
            eos_token=self._token_text(self.llama.token_eos()),
            bos_token=self._token_text(self.llama.token_bos()),
            add_generation_prompt=True,
        )


_loaded: dict[tuple[Path, EngineOptions], LoadedModel] = {}
_loading = threading.Lock()

# The Llama object's own context is never used to generate, so keep it tiny.
_UNUSED_CTX = 64


@contextlib.contextmanager
def plain_weight_buffers() -> Iterator[None]:
    """Load weights without llama.cpp's CPU "extra" (repacked) buffer types.

    llama-cpp-python 0.3.36's build crashes in every multi-token batch on AVX2
    CPUs when weights sit in repacked buffers (prefill, batched decode, drafts);
    plain buffers decode the same. ``Llama`` takes no argument for it, so the
    default model parameters it starts from are patched while it loads (under
    ``_loading``, so no other load sees the patch).
    """
    import llama_cpp
    import llama_cpp.llama as high_level

    original = llama_cpp.llama_model_default_params

    def plain() -> Any:
        params = original()
        if hasattr(params, "use_extra_bufts"):
            params.use_extra_bufts = False
        return params

    high_level.llama_cpp.llama_model_default_params = plain
    try:
        yield
    finally:
        high_level.llama_cpp.llama_model_default_params = original


def load_model(path: Path, options: EngineOptions) -> LoadedModel:
    """Return the model at ``path``, loading it on first use (once per process).

    Backends naming the same file and engine options share one model and engine.

    Raises:
        ModelLoadError: the file is missing, not GGUF, or llama.cpp rejects it.
    """
    key = (path.resolve(), options)
    with _loading:
        if key in _loaded:
            return _loaded[key]
        check_gguf(path)
        from llama_cpp import Llama

        try:
            with plain_weight_buffers():
                llama = Llama(
                    model_path=str(path),
                    n_ctx=_UNUSED_CTX,
                    n_threads=options.n_threads,
                    verbose=False,
                )
        except (ValueError, RuntimeError, OSError) as e:
            raise ModelLoadError(str(path), f"llama.cpp could not load it ({e})") from e
        model = LoadedModel(
            path=path,
            llama=llama,
            n_ctx=options.n_ctx,
            engine=Engine(functools.partial(open_llama, llama), options),
        )
        _loaded[key] = model
        return model
