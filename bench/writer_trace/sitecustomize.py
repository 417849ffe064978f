"""Writer trace for benchmarks (`bench/storm --writer-trace FILE`), loaded into `itsmd serve` through PYTHONPATH.

With ITSMD_WRITER_TRACE=FILE set, wraps the writer's private methods (bench-only: follows itsmd.storage.writer)
and appends one JSON line per transaction: {"t", "tx_ms", "items": [[kind, run_ms, queued_ms], ...]}, where kind
is the write's function (`PipelineWorker._step`, `review`, ...) or `Rows:<table>`, run_ms the time it ran inside
the transaction and queued_ms how long it waited in the queue before its transaction began.
"""

from __future__ import annotations

import functools
import json
import os
import time
from typing import Any

_path = os.environ.get("ITSMD_WRITER_TRACE")


def _install(path: str) -> None:
    import itsmd.storage.writer as w

    out = open(path, "a", buffering=1)  # noqa: SIM115 - open for the life of the process
    queued_at: dict[int, float] = {}
    last: dict[str, Any] = {}

    def kind(work: Any) -> str:
        if isinstance(work, w.Rows):
            return "Rows:" + (work.table.name if work.table is not None else "-")
        f = work.func if isinstance(work, functools.partial) else work
        return str(getattr(f, "__qualname__", type(f).__name__))

    submit = w.Writer.submit

    async def traced_submit(self: Any, work: Any, urgent: bool = False) -> Any:
        queued_at[id(work)] = time.perf_counter()
        return await (submit(self, work, urgent) if urgent else submit(self, work))  # older writers: no urgent

    apply = w.Writer._apply

    def traced_apply(conn: Any, works: list[Any], yield_to: Any = None) -> list[Any]:
        began = time.perf_counter()
        items, results = [], []
        for work in works:  # one by one (Rows are not merged into one executemany here: a small distortion)
            if yield_to and results and not isinstance(work, w.Rows):
                break
            t = time.perf_counter()
            results.extend(apply(conn, [work]))
            items.append([kind(work), round((time.perf_counter() - t) * 1000, 3),
                          round((began - queued_at.pop(id(work), began)) * 1000, 3)])
        last["items"] = items
        return results

    transaction = w.Writer._transaction

    def traced_transaction(self: Any, works: list[Any], yield_to: Any = None) -> list[Any]:
        t = time.perf_counter()
        last["items"] = []
        try:
            return transaction(self, works, yield_to) if yield_to is not None else transaction(self, works)
        finally:
            out.write(json.dumps({"t": time.time(), "tx_ms": round((time.perf_counter() - t) * 1000, 3),
                                  "items": last["items"]}) + "\n")

    w.Writer.submit = traced_submit  # type: ignore[method-assign]
    w.Writer._apply = staticmethod(traced_apply)  # type: ignore[method-assign,assignment]
    w.Writer._transaction = traced_transaction  # type: ignore[method-assign]


if _path:
    _install(_path)
