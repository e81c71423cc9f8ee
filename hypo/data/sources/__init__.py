"""Sources of surgical cases: the VitalDB open dataset, a folder of ``.vital`` files, the demo simulator (two sites).

Every source yields :class:`~hypo.data.sources.base.Case` objects through the same small interface
(:class:`~hypo.data.sources.base.Source`), so the preprocessing job never knows where a case came from.
Every source describes itself (``source.describe()``, a :class:`~hypo.data.sources.spec.SourceSpec`) and is built
from such a description in one place, :func:`hypo.data.sources.factory.build_source` (``spec_from_flags`` makes
one from ``hypo windows``'s flags).
"""

from hypo.data.sources.base import Case, Source, iter_cases

__all__ = ["Case", "Source", "iter_cases"]
