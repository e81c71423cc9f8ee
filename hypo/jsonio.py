"""Plain values: what a config, a result or a number becomes in a JSON file, and how a metric is shown in a table.

One helper for every layer: :func:`jsonable` turns dataclass configs, numpy arrays and scalars into JSON-ready
Python values (strict JSON: NaN and infinities become None), :func:`finite` is one number as strict JSON has it,
and :func:`metric_text` is a metric as the tables print it (``n/a`` when undefined).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np


def jsonable(obj: Any, strict: bool = True) -> Any:
    """A JSON-ready copy of ``obj``.

    Dataclasses become dicts without the fields their ``omitted_fields()`` names (how configs keep the dict they had
    before an option existed), tuples and arrays become lists, numpy scalars Python numbers, keys strings.

    Args:
        obj: A dataclass, dict, list, tuple, numpy array or scalar, or a plain value.
        strict: Write NaN and infinities as None (strict JSON); False keeps them as floats.

    Returns:
        The same structure in plain Python values.
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        omit = obj.omitted_fields() if hasattr(obj, "omitted_fields") else ()
        return {f.name: jsonable(getattr(obj, f.name), strict) for f in dataclasses.fields(obj) if f.name not in omit}
    if isinstance(obj, dict):
        return {k if isinstance(k, str) else str(k): jsonable(v, strict) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v, strict) for v in obj]
    if isinstance(obj, np.ndarray):
        return [jsonable(v, strict) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return finite(obj) if strict else float(obj)
    return obj


def finite(v: Any) -> float | None:
    """``v`` as a float, or None when it is missing, not a number, NaN or infinite (strict JSON)."""
    if v is None or isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def metric_text(v: Any) -> str:
    """A metric as the tables show it: four decimals, or ``n/a`` when undefined (NaN, None)."""
    v = finite(v)
    return "n/a" if v is None else f"{v:.4f}"
