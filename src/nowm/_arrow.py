"""Scan records as Arrow tables (Parquet output, Ray Data). Needs pyarrow."""

from __future__ import annotations

import json

__all__ = ["schema", "records_to_table", "COLUMNS"]

#: (column, arrow type name); nested fields (``layers``, ``metadata``) are JSON text.
COLUMNS = (
    ("path", "string"), ("use", "string"), ("allowed", "bool_"), ("status", "string"),
    ("reason", "string"), ("marked", "bool_"), ("policy", "string"), ("owner", "int64"),
    ("false_alarm", "float64"), ("offset", "float64"), ("tempo", "float64"),
    ("pitch", "float64"), ("score", "float64"), ("key", "string"), ("layers", "string"),
    ("duration", "float64"), ("metadata_policy", "string"), ("metadata", "string"),
    ("error", "string"), ("shard", "string"), ("member", "string"), ("manifest", "string"),
    ("line", "int64"),
)
_JSON = {"layers", "metadata"}


def schema():
    import pyarrow as pa

    return pa.schema([(name, getattr(pa, kind)()) for name, kind in COLUMNS])


def records_to_table(records):
    """A pyarrow Table of scan records (dicts from :func:`nowm.ingest.check_item`)."""
    import pyarrow as pa

    cols = {name: [] for name, _ in COLUMNS}
    for rec in records:
        for name, _ in COLUMNS:
            v = rec.get(name)
            if name in _JSON and v is not None:
                v = json.dumps(v)
            cols[name].append(v)
    return pa.table(cols, schema=schema())


def table_to_records(table):
    """Inverse of :func:`records_to_table` (JSON columns parsed back)."""
    out = []
    for row in table.to_pylist():
        for name in _JSON:
            if row.get(name) is not None:
                row[name] = json.loads(row[name])
        out.append(row)
    return out
