"""Sources of surgical cases: the VitalDB open dataset, a folder of ``.vital`` files, the demo simulator (two sites).

Every source yields :class:`~hypo.data.sources.base.Case` objects through the same small interface
(:class:`~hypo.data.sources.base.Source`), so the preprocessing job never knows where a case came from.
Use :func:`make_source` to build one from command-line style arguments.
"""

from hypo.data.sources.base import Case, Source, iter_cases

__all__ = ["Case", "Source", "iter_cases"]
