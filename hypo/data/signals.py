"""The seven non-invasive signals of the study, their order, kinds and VitalDB track names."""

from __future__ import annotations

# Order is fixed everywhere: case arrays, windows (time-major [60, 7]) and model inputs.
SIGNALS: tuple[str, ...] = ("ecg", "nibp_sbp", "nibp_mbp", "nibp_dbp", "pleth", "mac", "bis")
N_SIGNALS = len(SIGNALS)

ECG, SBP, MBP, DBP, PLETH, MAC, BIS = range(N_SIGNALS)

# Waveforms are restored by linear interpolation, numerics by carrying the previous value forward.
WAVEFORMS: tuple[int, ...] = (ECG, PLETH)
NUMERICS: tuple[int, ...] = (SBP, MBP, DBP, MAC, BIS)
NIBP: tuple[int, ...] = (SBP, MBP, DBP)

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
