"""Evaluations: function calling in the Berkeley Function Calling Leaderboard's format.

Load cases (:func:`load_cases`), run them through an agent on any backend with a
chosen tool selection policy (:func:`evaluate`, :func:`run_case`), and grade
calls BFCL's way (:func:`grade_calls`: function name, arguments known, required
given, types, allowed values). ``benchmarks/function_calling.py`` and
``plait eval function-calling`` print the figures as JSON.
"""

from ._cases import FunctionCase, json_schema_of_parameters, load_case_file, load_cases
from ._grading import Grade, grade_calls, normalize_text, value_matches
from ._run import INSTRUCTIONS, CaseResult, CategoryReport, evaluate, result_json, run_case

__all__ = [
    "INSTRUCTIONS",
    "CaseResult",
    "CategoryReport",
    "FunctionCase",
    "Grade",
    "evaluate",
    "grade_calls",
    "json_schema_of_parameters",
    "load_case_file",
    "load_cases",
    "normalize_text",
    "result_json",
    "run_case",
    "value_matches",
]
