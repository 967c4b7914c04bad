"""Scanning at scale with Ray Data (``pip install 'nowm[ray]'``).

The scan is a Ray Data pipeline: audio files are read with
``ray.data.read_binary_files`` and checked by :class:`Checker`, a callable class
run by ``map_batches`` on a pool of actors, so numba's kernels are compiled (or
loaded from its cache) once per worker, not per item. Tar shards and JSONL
manifests are expanded inside the workers (one row per shard or manifest), which
read them from storage every worker can see. No cluster code of nowm's own: Ray
schedules, retries the work of a worker that dies, and scales to a cluster
(``ray.init(address=...)`` or ``nowm scan --engine ray --address ADDR``).

Records are the same as the local engine's (:func:`nowm.scan`), as Arrow rows
whose ``layers`` and ``metadata`` columns hold JSON text
(:func:`records` turns them back into dicts).

Catalog marking (:func:`nowm.mark_catalog` with ``engine="ray"``, ``nowm batch
--engine ray``) runs the same way: the driver plans the batch and keeps the
manifest; :class:`Marker` actors mark and verify one file per task on storage
that every node shares.

Examples
--------
>>> import ray, nowm.ray                                              # doctest: +SKIP
>>> ray.init(num_cpus=8)
>>> ds = nowm.ray.scan(["/data/clips", "/data/shards/*.tar"], use="genai-training")
>>> ds.filter(lambda r: r["allowed"]).write_parquet("/data/allowed")
>>> ds.groupby("status").count().show()
"""

from __future__ import annotations

import os

import numpy as np

from . import sources
from .errors import ParameterError
from .ingest import AUDIO_EXTENSIONS, _check_opts, check_item

__all__ = ["scan", "Checker", "records", "scan_records", "Marker", "mark_tasks"]

_REMOTE = ("://",)


class Checker:
    """``map_batches`` callable class: one scan record per item of a batch.

    Input rows are either ``{"bytes", "path"}`` (from ``read_binary_files``), or
    ``{"path", "kind"}`` with ``kind`` one of ``tar``, ``manifest`` or ``file``,
    expanded and read here.
    Unreadable items become records with an ``error``; nothing raises.
    """

    def __init__(self, opts: dict, max_member_bytes: int = sources.MAX_MEMBER_BYTES):
        from .ingest import warm

        self.opts = opts
        self.cap = int(max_member_bytes)
        warm()  # once per worker

    def _items(self, row):
        kind = row.get("kind")
        path = row.get("path")
        if kind is None:
            return [sources.Item(path, data=row["bytes"])]
        if kind == "tar":
            return sources.iter_tar(path, max_member_bytes=self.cap)
        if kind == "manifest":
            return sources.iter_manifest(path)
        return [sources.Item(path, path=path)]

    def __call__(self, batch):
        from ._arrow import records_to_table

        rows = batch.to_pylist() if hasattr(batch, "to_pylist") else _rows(batch)
        out = []
        for row in rows:
            for item in self._items(row):
                out.append(check_item(item, **self.opts))
        return records_to_table(out)


def _rows(batch):
    cols = list(batch)
    n = len(batch[cols[0]]) if cols else 0
    return [{c: _py(batch[c][i]) for c in cols} for i in range(n)]


def _py(v):
    return v.item() if isinstance(v, np.generic) else v


def _plan(paths):
    """Split ``paths`` into audio files (for ``read_binary_files``), rows that the
    workers expand (tar shards, manifests) and error records made here."""
    files, rows, errors = [], [], []
    for p in paths:
        p = os.fspath(p)
        if any(m in p for m in _REMOTE):  # read by Ray (files) or by the workers
            if sources._is_tar(p) or sources._is_manifest(p):
                rows.append({"path": p, "kind": "tar" if sources._is_tar(p) else "manifest"})
            else:
                files.append(p)
            continue
        for item in _expand(p):
            if item.error is not None:
                errors.append(item)
            elif item.extra.get("kind") in ("tar", "manifest"):
                rows.append({"path": item.path, "kind": item.extra["kind"]})
            elif os.path.isfile(item.path) and os.access(item.path, os.R_OK):
                files.append(item.path)
            else:  # a dangling link, no permission: Ray's reader would fail the job
                errors.append(item)
    return files, rows, errors


def _expand(p):
    """Local paths, folders and globs into file items; shards and manifests as one
    item each (not opened here)."""
    def one(q, explicit):
        if os.path.isdir(q):
            for f in sources._walk_files(q):
                if sources._is_tar(f):
                    yield sources.Item(f, path=f, extra={"kind": "tar"})
                elif os.path.splitext(f)[1].lower() in AUDIO_EXTENSIONS:
                    yield sources.Item(f, path=f)
        elif not os.path.lexists(q):
            yield sources.Item(q, error=f"{q}: no such file or folder; check the path")
        elif sources._is_tar(q):
            yield sources.Item(q, path=q, extra={"kind": "tar"})
        elif sources._is_manifest(q):
            yield sources.Item(q, path=q, extra={"kind": "manifest"})
        elif explicit or os.path.splitext(q)[1].lower() in AUDIO_EXTENSIONS:
            yield sources.Item(q, path=q)

    if sources._GLOB_CHARS & set(p) and not os.path.lexists(p):
        found = False
        for m in sources._glob(p):
            found = True
            yield from one(m, False)
        if not found:
            yield sources.Item(p, error=f"{p}: no file matches this pattern")
    else:
        yield from one(p, True)


def scan(paths_or_dataset, *, use: str = "ai-training", key=None, threshold: float = 1e-6,
         consent: bool = False, tags: bool = True, min_seconds: float = 3.0,
         allow_too_short: bool = False, max_member_bytes: int = sources.MAX_MEMBER_BYTES,
         concurrency=None, batch_size: int = 8, checker=Checker, **map_batches_kwargs):
    """A Ray Dataset of scan records, one per audio item.

    Parameters
    ----------
    paths_or_dataset : list of str, or ray.data.Dataset
        Files, folders, globs, tar shards and JSONL manifests (as for
        :func:`nowm.scan`; remote URIs such as ``s3://`` go to Ray's readers as
        they are), or a Dataset with ``bytes`` and ``path`` columns (e.g. from
        ``ray.data.read_binary_files(..., include_paths=True)``).
    use, key, threshold, consent, tags, min_seconds, allow_too_short
        As for :func:`nowm.check`.
    max_member_bytes : int
        Largest tar member read.
    concurrency : int or (int, int), optional
        Size of the actor pool, or its (min, max) (default: 1 to the cluster's
        CPUs). A fixed pool as large as the cluster leaves no CPU for Ray's file
        readers and stalls; keep the minimum below the CPU count.
    batch_size : int
        Items per batch handed to a worker.
    checker : type
        The callable class (a subclass of :class:`Checker`).
    **map_batches_kwargs
        Passed to ``map_batches`` (e.g. ``num_cpus``, ``max_restarts``).

    Returns
    -------
    ray.data.Dataset
        Lazy; its columns are those of :data:`nowm._arrow.COLUMNS`.
    """
    import ray
    import ray.data

    opts = _check_opts(use, key, threshold, consent, tags, min_seconds, allow_too_short)
    done = None  # records made here, without workers
    if isinstance(paths_or_dataset, ray.data.Dataset):
        source = paths_or_dataset
    else:
        paths = [paths_or_dataset] if isinstance(paths_or_dataset, (str, os.PathLike)) else list(paths_or_dataset)
        if not paths:
            raise ParameterError("no paths to scan")
        files, rows, errors = _plan(paths)
        if errors:
            done = _error_records(errors, opts)
        if rows:  # one pool of workers for everything: files are read by the workers
            source = ray.data.from_items(rows + [{"path": f, "kind": "file"} for f in files])
        elif files:
            source = ray.data.read_binary_files(files, include_paths=True)
        else:
            return done
    if concurrency is None:
        cpus = int(ray.cluster_resources().get("CPU", 1)) if ray.is_initialized() else (os.cpu_count() or 1)
        concurrency = (1, max(1, cpus))
    lo, hi = (concurrency, concurrency) if isinstance(concurrency, int) else concurrency
    map_batches_kwargs.setdefault("num_cpus", 1)
    out = source.map_batches(checker, fn_constructor_kwargs={"opts": opts,
                                                             "max_member_bytes": max_member_bytes},
                             batch_size=batch_size, batch_format="pyarrow",
                             compute=ray.data.ActorPoolStrategy(min_size=lo, max_size=hi),
                             **map_batches_kwargs)
    return out if done is None else out.union(done)


def _error_records(items, opts):
    import ray.data

    from ._arrow import records_to_table

    return ray.data.from_arrow(records_to_table([check_item(i, **opts) for i in items]))


def records(ds) -> list:
    """The records of a scan Dataset as dicts (JSON columns parsed), sorted by path."""
    from ._arrow import table_to_records

    import pyarrow as pa

    tables = [pa.Table.from_batches([b]) if isinstance(b, pa.RecordBatch) else b
              for b in ds.iter_batches(batch_format="pyarrow", batch_size=None)]
    rows = []
    for t in tables:
        rows.extend(table_to_records(t))
    return sorted(rows, key=lambda r: (r["path"], r.get("line") or 0))


def scan_records(paths, *, address=None, jobs: int = 1, **kwargs):
    """Iterate over scan records computed on Ray (for ``nowm scan --engine ray``).

    Connects to ``address`` (``auto`` or ``ray://host:10001``...), or starts a
    local Ray with ``jobs`` CPUs (0: all) when no cluster is given.
    """
    import json

    _ensure_ray(address, jobs)
    ds = scan(paths, **kwargs)
    for batch in ds.iter_batches(batch_format="pyarrow", batch_size=256):
        for row in batch.to_pylist():
            for name in ("layers", "metadata"):
                if row.get(name) is not None:
                    row[name] = json.loads(row[name])
            yield row


# --------------------------------------------------------------------------- catalog marking

class Marker:
    """``map_batches`` callable class for catalog marking: runs one task of
    :func:`nowm.batch.mark_catalog`'s plan per row and returns its result.

    Rows are ``{"index": int, "task": bytes}`` (a pickled task); results are
    ``{"index": int, "result": bytes}`` (a pickled result dict). A task never
    raises for a problem with its file: that is a ``failed`` result. Marking is
    deterministic and each output is renamed into place atomically, so a task
    that Ray runs again after a worker died writes the same file again.

    The actors read the sources from shared storage themselves rather than
    through ``read_binary_files``: they write the outputs there anyway, and
    ``embed_file`` streams a long file in blocks instead of holding it whole in
    the object store.
    """

    def __init__(self, key=None):
        from .batch import _warm

        _warm(key)  # once per worker: numba's kernels, PyAV, mutagen

    def run(self, task: dict) -> dict:
        from .batch import _run_task

        return _run_task(task)

    def __call__(self, batch):
        import pickle

        import pyarrow as pa

        index, result = [], []
        for i, blob in zip(batch.column("index").to_pylist(), batch.column("task").to_pylist()):
            index.append(i)
            result.append(pickle.dumps(self.run(pickle.loads(blob))))
        return pa.table({"index": pa.array(index, pa.int64()), "result": pa.array(result, pa.binary())})


def _ensure_ray(address=None, jobs=None):
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise ParameterError(f"the Ray engine needs Ray Data: pip install 'nowm[ray]' ({exc})") from None

    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=jobs or None, log_to_driver=False, include_dashboard=False)
    return ray


def mark_tasks(tasks, *, key=None, address=None, jobs=None, marker=Marker, concurrency=None,
               **map_batches_kwargs):
    """Run catalog-marking tasks on Ray; yield ``(index, result)`` as they finish.

    Used by :func:`nowm.mark_catalog` with ``engine="ray"``; the tasks are the
    plan it made (paths, policy, owner...), which must be valid on every node.

    Parameters
    ----------
    tasks : list of dict
    key : nowm.Key, optional
        Passed to each :class:`Marker` to warm its kernels.
    address : str, optional
        Cluster to join when Ray is not yet initialised (default: a local Ray
        with ``jobs`` CPUs).
    marker : type
        The callable class (a subclass of :class:`Marker`).
    concurrency : int or (int, int), optional
        Actor pool size, default 1 to the cluster's CPUs.

    Yields
    ------
    (int, dict)
        Index into ``tasks`` and the task's result. Ray may run a task twice
        (after a worker died); the caller keeps the first result of each index.
    """
    import pickle

    ray = _ensure_ray(address, jobs)
    import ray.data

    if not tasks:
        return
    items = [{"index": i, "task": pickle.dumps(t)} for i, t in enumerate(tasks)]
    ds = ray.data.from_items(items, override_num_blocks=min(len(items), 1000))
    if concurrency is None:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        concurrency = (1, max(1, min(cpus, len(items))))
    lo, hi = (concurrency, concurrency) if isinstance(concurrency, int) else concurrency
    map_batches_kwargs.setdefault("num_cpus", 1)
    out = ds.map_batches(marker, fn_constructor_kwargs={"key": key}, batch_size=1,
                         batch_format="pyarrow",
                         compute=ray.data.ActorPoolStrategy(min_size=lo, max_size=hi),
                         **map_batches_kwargs)
    for batch in out.iter_batches(batch_format="pyarrow", batch_size=None):
        for i, blob in zip(batch.column("index").to_pylist(), batch.column("result").to_pylist()):
            yield int(i), pickle.loads(blob)
