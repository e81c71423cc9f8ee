"""hypo: intraoperative hypotension prediction from non-invasive monitor data.

The package holds the sources of surgical cases, the preprocessing steps (artefact removal, gap filling,
windows and labels, subject splits), the models, losses, metrics and training loop, and the search.
Nothing here does work at import time.
"""

__version__ = "0.1.0"
