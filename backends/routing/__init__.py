"""Routers: backends that pick another backend per request.

A router is itself a :class:`~plait.backends.Backend`, so routers nest (a
threshold router whose strong side is a fallback chain) and agents use them
like any model. Every request leaves a :class:`RoutingDecision` in the router's
``decisions`` log; a shared :class:`CostLedger` accounts cost per run, agent and
backend and refuses calls that could pass a budget cap.
"""

from plait._lazy import moved_names

from ._breaker import CircuitBreaker, shared_breaker
from ._complexity import ComplexityScorer, ModelScorer, RequestFeatures, Scorer, request_features
from ._costs import CostLedger, CostReport, Price, backend_price, estimate_prompt_tokens
from ._fallback import FallbackRouter
from ._multi import MultiRoundRouter
from ._router import Route, Router, RoutingDecision
from ._rules import Rule, RuleRouter
from ._threshold import Calibration, ThresholdRouter

__all__ = [
    "Calibration",
    "CircuitBreaker",
    "ComplexityScorer",
    "CostLedger",
    "CostReport",
    "FallbackRouter",
    "ModelScorer",
    "MultiRoundRouter",
    "Price",
    "RequestFeatures",
    "Route",
    "Router",
    "RoutingDecision",
    "Rule",
    "RuleRouter",
    "Scorer",
    "ThresholdRouter",
    "backend_price",
    "estimate_prompt_tokens",
    "request_features",
    "shared_breaker",
]

# One is_transient for retries and fallbacks now lives in plait.retry; the old
# name stays one release.
__getattr__ = moved_names(
    __name__, {"is_transient": ("plait.retry:is_transient", "plait.retry.is_transient")}
)
