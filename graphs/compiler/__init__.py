"""The LLMCompiler loop: plan -> execute -> join -> replan, as plain async code.

Each round is a typed record in the run's result store, so a durable run
resumes at the round it stopped in; approval pauses through the executor's own
hold. ``LLMCompiler.graph()`` offers the loop to LangGraph users as a LangGraph
graph. Built on :mod:`plait.graphs.dag`.
"""

from ._approval_gate import ApprovalGate
from ._compiler import LLMCompiler
from ._rounds import CompilerResult, Round

__all__ = ["ApprovalGate", "CompilerResult", "LLMCompiler", "Round"]
