"""The exceptions reachable from an error: what a logged traceback can show of it."""

from __future__ import annotations

import traceback


def chain(error: BaseException) -> list[BaseException]:
    """``error`` and every exception reachable from it through ``__cause__`` and
    ``__context__`` (each once, even in a cycle)."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [error]
    while todo:
        item = todo.pop()
        if item is None or any(item is known for known in seen):
            continue
        seen.append(item)
        todo += [item.__cause__, item.__context__]
    return seen


def chain_text(error: BaseException) -> str:
    """Everything a log could show of ``error``: its formatted traceback, then the text,
    repr and arguments of each exception in its chain."""
    parts = ["".join(traceback.format_exception(error))]
    for item in chain(error):
        parts += [str(item), repr(item), repr(item.args)]
    return "\n".join(parts)
