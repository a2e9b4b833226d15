"""HTML run reports: one self-contained page per run, read from its trace.

```python
from plait.cli.report import write_html_report

write_html_report(".plait/runs/<run_id>")  # writes report.html beside trace.jsonl
```
"""

from ._html import (
    STATE_COLORS,
    breaker_events,
    build_html_report,
    model_calls,
    write_html_report,
)

__all__ = [
    "STATE_COLORS",
    "breaker_events",
    "build_html_report",
    "model_calls",
    "write_html_report",
]
