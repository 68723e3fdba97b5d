"""Where bit-exact evaluations run: in this process, on a Dask ``LocalCluster`` (default: 2
worker processes, one thread each) or on an existing Dask scheduler (``--scheduler ADDRESS``).

Work items are ``(assignment, acc_width)`` pairs, or ``(assignment, acc_width, correction,
rows)`` for a corrected bank (:meth:`sim.dse.accuracy.AccuracyModel.measured`); a task
evaluates a chunk of them with the
worker's own :class:`sim.dse.accuracy.AccuracyModel`, built once per worker process from the
JSON-able settings (:func:`sim.dse.accuracy.accuracy_model`). Results come back as they finish,
so the caller caches each one at once (a run interrupted later resumes from there).
"""

from __future__ import annotations

import logging
import re

from .errors import DseError

__all__ = ["LocalExecutor", "DaskExecutor", "make_executor", "measure_chunk"]


def measure_chunk(settings: dict, items: list) -> list:
    """Evaluate ``[(assign, acc_width[, correction, rows]), ...]`` (runs on a worker)."""
    from .accuracy import accuracy_model

    model = accuracy_model(settings)
    return [model.measured(*item) for item in items]


class LocalExecutor:
    """Evaluations in this process, one by one."""

    kind = "local"
    workers = 1

    def map(self, settings: dict, items: list):
        """Yield ``(index, result)`` for ``items`` in completion order."""
        for i, it in enumerate(items):
            yield i, measure_chunk(settings, [it])[0]

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_ADDRESS = re.compile(r"((tcp|tls|inproc|ws|wss|ucx)://)?[A-Za-z0-9_.\-\[\]:]+(:\d{1,5})?",
                      re.ASCII)


class DaskExecutor(LocalExecutor):
    """Evaluations on Dask. ``address=None``: start a ``LocalCluster`` of ``workers`` processes
    when first needed; otherwise connect to the scheduler at ``address`` (checked at once)."""

    def __init__(self, workers: int = 2, address: str | None = None, *, chunk: int = 2,
                 connect_timeout: float = 3.0):
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise DseError("Dask's distributed package is not installed (pip install "
                           "'dask[distributed]'); use -j 1 to run in one process") from None
        self.workers = workers
        self.address = address
        self.chunk = max(1, int(chunk))
        self._client = None
        self._cluster = None
        self.kind = "scheduler" if address else "LocalCluster"
        if address is not None:
            if not _ADDRESS.fullmatch(address) or len(address) > 200:
                raise DseError(f"--scheduler {address[:60]!r} is not a scheduler address "
                               "(e.g. tcp://10.0.0.5:8786)")
            self._connect(connect_timeout)

    def _connect(self, timeout):
        from distributed import Client
        try:
            self._client = Client(self.address, timeout=f"{timeout}s", set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise DseError(f"cannot reach the Dask scheduler at {self.address}: "
                           f"{' '.join(str(exc).split()) or type(exc).__name__}") from None
        self.workers = max(1, len(self._client.scheduler_info().get("workers", {})))

    def _start(self):
        if self._client is not None:
            return
        import tempfile

        from distributed import Client, LocalCluster
        import dask

        self._scratch = tempfile.mkdtemp(prefix="axm-dask-")
        # Dask's lock files and worker spill folders go there too (removed on close)
        self._config = dask.config.set({"temporary-directory": self._scratch})
        self._cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1,
                                     processes=True, dashboard_address=None,
                                     silence_logs=logging.ERROR,
                                     local_directory=self._scratch)
        self._client = Client(self._cluster, set_as_default=False)

    def map(self, settings: dict, items: list):
        if not items:
            return
        from distributed import as_completed
        self._start()
        # about four tasks per worker: few enough that a cheap evaluation is not swamped by
        # scheduling, enough to balance the load and to cache results as they come
        size = max(self.chunk, -(-len(items) // (4 * max(1, self.workers))))
        chunks = [list(range(i, min(i + size, len(items))))
                  for i in range(0, len(items), size)]
        futures = {}
        for idx in chunks:
            f = self._client.submit(measure_chunk, settings, [items[i] for i in idx], pure=False)
            futures[f] = idx
        for f in as_completed(list(futures), loop=self._client.loop):
            for i, r in zip(futures[f], f.result()):
                yield i, r

    def close(self):
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None
        if getattr(self, "_config", None) is not None:
            self._config.__exit__(None, None, None)
            self._config = None
        if getattr(self, "_scratch", None):
            import shutil
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None


def make_executor(jobs: int = 2, scheduler: str | None = None):
    """``scheduler``: a :class:`DaskExecutor` on it; ``jobs > 1``: a LocalCluster of ``jobs``
    workers; ``jobs == 1``: :class:`LocalExecutor`."""
    if scheduler is not None:
        return DaskExecutor(address=scheduler)
    if jobs > 1:
        return DaskExecutor(workers=jobs)
    return LocalExecutor()
