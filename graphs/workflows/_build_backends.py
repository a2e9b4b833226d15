"""The ``backends:`` section built: each model wrapped in its run meter, routers over them.

Every leaf (the file's, and those given in code in their place) is wrapped in a
:class:`~._metering.MeteredBackend`, which reports each call to the run it
serves; routers are built over the metered leaves, members first, so a router
may name a member given in code. Router cycles never reach here: they are
problems of the file (``_references``), and only a validated file is built.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path

from plait.backends import (
    Backend,
    CachedBackend,
    CacheStore,
    LocalBackend,
    OpenAIBackend,
)
from plait.backends.routing import (
    CostLedger,
    FallbackRouter,
    Price,
    Rule,
    RuleRouter,
    ThresholdRouter,
)

from ._metering import MeteredBackend, RunLedger
from ._schema import LocalBackendSpec, OpenAIBackendSpec, RouterBackendSpec, WorkflowSpec

__all__ = ["backend_named", "build_backends", "close_backends", "router_ledger"]


def router_ledger(spec: WorkflowSpec) -> RunLedger:
    """The ledger the file's routers share: the tightest router ``budget`` and every
    ``agent_budgets`` entry; prices are filled in as the backends are built."""
    routers = [b for b in spec.backends.values() if isinstance(b, RouterBackendSpec)]
    return RunLedger(
        prices={},
        budget=min((b.budget for b in routers if b.budget is not None), default=None),
        agent_budgets={k: v for b in routers for k, v in b.agent_budgets.items()},
    )


def build_backends(
    spec: WorkflowSpec,
    base_dir: Path,
    overrides: Mapping[str, Backend],
    ledger: CostLedger,
    cache: CacheStore | None = None,
) -> dict[str, Backend]:
    """Every backend the file declares by name, plus ``default`` (the embedded model
    unless the file or ``overrides`` name one); ``ledger`` learns each one's price.

    With a ``cache`` (the file's ``cache:`` entry) every leaf answers repeats from it.
    """
    cache_spec = spec.cache_spec
    cached: Callable[[Backend, Price], Backend] | None = None
    if cache is not None and cache_spec is not None:
        cached = _cached(cache, cache_spec.nondeterministic)
    prices = {
        n: Price(**b.price.model_dump())
        for n, b in spec.backends.items()
        if isinstance(b, OpenAIBackendSpec) and b.price is not None
    }

    def metered(name: str, backend: Backend) -> Backend:
        # A stand-in keeps the price its entry declares (budget tests rely on it).
        price = prices.get(name, Price())
        ledger.prices = {**ledger.prices, backend.name: price}
        # The cache sits on the model itself, below any router: every call, the
        # planner's and each agent's, reaches it, and its identity is the model's.
        return MeteredBackend(cached(backend, price) if cached else backend, price)

    built = {name: metered(name, backend) for name, backend in overrides.items()}

    def make(name: str) -> Backend:
        if name in built:
            return built[name]
        body = spec.backends.get(name)
        if body is None:  # "default", named by nothing in the file
            built[name] = metered(name, LocalBackend())
        elif isinstance(body, LocalBackendSpec):
            built[name] = metered(name, _local(body, base_dir))
        elif isinstance(body, OpenAIBackendSpec):
            built[name] = metered(name, _openai(name, body))
        else:
            members = {m: make(m) for m in _router_members(body)}
            built[name] = _router(name, body, members, ledger)
        return built[name]

    for name in [*spec.backends, "default"]:
        make(name)
    return built


def _cached(store: CacheStore, nondeterministic: bool) -> Callable[[Backend, Price], Backend]:
    def wrap(backend: Backend, price: Price) -> Backend:
        return CachedBackend(backend, store, cache_nondeterministic=nondeterministic, price=price)

    return wrap


def backend_named(backends: Mapping[str, Backend], name: str | None) -> Backend:
    """The backend called ``name`` (``None``: the ``default`` entry, else the embedded model)."""
    return backends[name or "default"]


async def close_backends(backends: Mapping[str, Backend]) -> None:
    """Close every backend (connections, engines)."""
    await asyncio.gather(*(b.aclose() for b in backends.values()), return_exceptions=True)


def _openai(name: str, body: OpenAIBackendSpec) -> Backend:
    return OpenAIBackend(
        body.model,
        base_url=body.base_url,
        api_key_env=body.api_key_env,
        headers=body.headers or None,
        timeout=body.timeout_s,
        max_response_bytes=body.max_response_bytes,
        retry=OpenAIBackend.DEFAULT_RETRY.with_attempts(body.max_attempts),
        name=name,
    )


def _local(body: LocalBackendSpec, base_dir: Path) -> Backend:
    model = None
    if body.model is not None:
        model = Path(body.model) if Path(body.model).is_absolute() else base_dir / body.model
    return LocalBackend(
        model,
        n_ctx=body.n_ctx,
        n_threads=body.n_threads,
        temperature=body.temperature,
        n_seq_max=body.n_seq_max,
        type_k=body.kv_type_k,
        type_v=body.kv_type_v,
        prefix_cache=body.prefix_cache,
    )


def _router_members(body: RouterBackendSpec) -> list[str]:
    members = [*body.chain, *(r.backend for r in body.rules)]
    members += [m for m in (body.default, body.cheap, body.strong) if m is not None]
    return members


def _router(
    name: str, body: RouterBackendSpec, built: Mapping[str, Backend], ledger: CostLedger
) -> Backend:
    if body.policy == "fallback":
        return FallbackRouter(
            [built[m] for m in body.chain],
            failure_threshold=body.breaker.failures,
            window_s=body.breaker.window_s,
            cooldown_s=body.breaker.cooldown_s,
            name=name,
            ledger=ledger,
        )
    if body.policy == "rules":
        assert body.default is not None  # checked by validation
        rules = [
            Rule(
                built[r.backend], agent=r.agent, tags=tuple(r.tags), pattern=r.pattern, name=str(i)
            )
            for i, r in enumerate(body.rules, 1)
        ]
        return RuleRouter(rules, built[body.default], name=name, ledger=ledger)
    assert body.cheap is not None and body.strong is not None  # checked by validation
    return ThresholdRouter(
        built[body.cheap], built[body.strong], threshold=body.threshold, name=name, ledger=ledger
    )
