"""Data layer: cases in, labelled and subject-split Parquet windows out, and reading them back.

Sources (:mod:`hypo.data.sources`: demo simulator, ``.vital`` folder, VitalDB open dataset) give cases; each case
has artefacts removed (:mod:`~hypo.data.artefacts`), gaps filled (:mod:`~hypo.data.filling`), and is cut into
labelled windows (:mod:`~hypo.data.windows`; labels from cuff readings or from the arterial line,
:mod:`~hypo.data.art`; with ``--cuff-from-art`` its cuff simulated from the line first, :mod:`~hypo.data.cuff`)
assigned to a subject split (:mod:`~hypo.data.splits`), by the Ray
Data job in :mod:`~hypo.data.preprocess` (per case: :mod:`~hypo.data.pipeline`). :mod:`~hypo.data.manifest` is the
dataset's typed record, :mod:`~hypo.data.dataset` reads the windows back, and :mod:`~hypo.data.integrity` checks that
a folder is what its build wrote (and lets a re-run repair it). May import only hypo's top-level modules
(config, errors, storage, runtime, records, jsonio).
"""
