"""Agent runtime, planner, joiner, router agent, supervisor and ensembles.

Coming with their issues.
"""

__all__: list[str] = []
