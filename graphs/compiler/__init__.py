"""The LLMCompiler loop: plan -> execute -> join -> replan, as a LangGraph graph.

Checkpointed (durable runs resume at the round they stopped in) and with
approval interrupts for flagged tools. Built on :mod:`plait.graphs.dag`.
"""

from ._approval import ApprovalGate
from ._compiler import CompilerResult, LLMCompiler, Round

__all__ = ["ApprovalGate", "CompilerResult", "LLMCompiler", "Round"]
