"""Reading a Kafka Connect task's stack trace: the line that says what went wrong.

A failed task's ``trace`` is a Java stack trace whose outermost exception is the framework's
wrapper ("Exiting WorkerSinkTask due to unrecoverable exception"); the cause a person can act on is
the innermost ``Caused by:``. The pipeline's state, the health check's ``last_error``, the restart
policy's error signature and ``cdc-platform status`` all name it, so they must read it alike.
"""

from __future__ import annotations

import re

_CAUSE = re.compile(r"Caused by: ([^\n]*)")


def innermost_cause(trace: str | None) -> str:
    """The innermost ``Caused by:`` line, else the trace's first line; ``no trace`` when there is none."""
    if not trace or not trace.strip():
        return "no trace"
    causes = _CAUSE.findall(trace)
    return (causes[-1] if causes else trace.strip().splitlines()[0]).strip()
