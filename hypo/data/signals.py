"""The seven non-invasive signals of the study, their order, kinds and VitalDB track names."""

from __future__ import annotations

import re

from hypo import config

# Order is fixed everywhere: case arrays, windows (time-major [60, 7]) and model inputs.
SIGNALS: tuple[str, ...] = ("ecg", "nibp_sbp", "nibp_mbp", "nibp_dbp", "pleth", "mac", "bis")
N_SIGNALS = len(SIGNALS)

ECG, SBP, MBP, DBP, PLETH, MAC, BIS = range(N_SIGNALS)

# Waveforms are restored by linear interpolation, numerics by carrying the previous value forward.
WAVEFORMS: tuple[int, ...] = (ECG, PLETH)
NUMERICS: tuple[int, ...] = (SBP, MBP, DBP, MAC, BIS)
NIBP: tuple[int, ...] = (SBP, MBP, DBP)

# Signal groups: what a monitor can lack as a whole (the cuff's three values stand or fall together). Channel loss,
# channel dropout, ablation searches and a model's tolerance of missing inputs are all stated in groups.
GROUPS: dict[str, tuple[int, ...]] = {"ecg": (ECG,), "nibp": NIBP, "pleth": (PLETH,), "mac": (MAC,), "bis": (BIS,)}
GROUP_NAMES: tuple[str, ...] = tuple(GROUPS)
GROUP_TITLES: dict[str, str] = {"ecg": "ECG", "nibp": "cuff (NIBP)", "pleth": "PLETH", "mac": "MAC", "bis": "BIS"}
# Groups a case may lack for its whole length and still be used (``--allow-missing``): total intravenous
# anaesthesia has no MAC, a BIS sensor is often never applied. Defined in hypo.config, which validates the flag.
MAY_BE_MISSING = config.MAY_BE_MISSING


def group_channels(groups) -> list[int]:
    """The channels (indices into :data:`SIGNALS`) of signal groups, in signal order.

    Args:
        groups: Names from :data:`GROUP_NAMES`.
    """
    wanted = set(groups)
    return [i for name in GROUP_NAMES if name in wanted for i in GROUPS[name]]


def parse_groups(text, allowed: tuple[str, ...] = GROUP_NAMES, what: str = "signal groups") -> tuple[str, ...]:
    """Group names from ``"mac,bis"`` / ``"ecg+nibp"`` or a sequence, checked and put in :data:`GROUP_NAMES` order.

    Raises:
        ValueError: On a name outside ``allowed`` (the message lists them).
    """
    items = re.split(r"[,+\s]+", text) if isinstance(text, str) else list(text)
    names = [str(n).strip().lower() for n in items if str(n).strip()]
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise ValueError(f"unknown {what} {', '.join(unknown)}; choose from {', '.join(allowed)}")
    return tuple(g for g in GROUP_NAMES if g in names)

UNITS: dict[str, str] = {
    "ecg": "mV",
    "nibp_sbp": "mmHg",
    "nibp_mbp": "mmHg",
    "nibp_dbp": "mmHg",
    "pleth": "unitless",
    "mac": "MAC",
    "bis": "index",
}

# VitalDB open-dataset track names, in SIGNALS order.
VITALDB_TRACKS: tuple[str, ...] = (
    "SNUADC/ECG_II",
    "Solar8000/NIBP_SBP",
    "Solar8000/NIBP_MBP",
    "Solar8000/NIBP_DBP",
    "SNUADC/PLETH",
    "Primus/MAC",
    "BIS/BIS",
)

CLASSES: tuple[str, ...] = ("normal", "hypotension", "hypertension")
NORMAL, HYPOTENSION, HYPERTENSION = range(3)
