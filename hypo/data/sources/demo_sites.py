"""The simulated hospitals of the demo cohort: what differs between site A (the default) and site B.

Site A is the demo simulator as it always was (:mod:`hypo.data.sources.demo`; its profile is built there from
its own constants, so its cases stay bit-identical). Site B is a second, **simulated** hospital for external
validation (``hypo windows --source demo --site b``, ``hypo demo-files --site b``):

- **another monitor**: its ``.vital`` files use other track names (:data:`SITE_B_TRACKS`), so reading them
  needs a ``--track-map`` (``hypo demo-files --site b`` writes ``track_map.json`` beside them);
- **cuff values stamped apart**: in half of the readings the monitor stamps systolic, mean and diastolic
  a second or two apart (``nibp_stagger_p``), as some monitors write them as they arrive;
- **another cuff interval**: a cuff cycle every 3 min (175-185 s) instead of 2.5-5 min;
- **an older and sicker mix**: wider pulse pressures (stiffer arteries), a lower and more variable baseline MAP,
  more induction and maintenance hypotension;
- **total intravenous anaesthesia** in a share of cases (``p_tiva``): no MAC at all (the files have no MAC track).

Its cases come from their own random streams and subject ids (200000 + n), so no site-B patient is a site-A
patient. Simulated, not clinical.
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class PatientMix:
    """Distribution of a subject's traits: (mean, sd, low clip, high clip) of each, mmHg or beats/min."""

    map: tuple[float, float, float, float]
    pp: tuple[float, float, float, float]
    hr: tuple[float, float, float, float]


@dataclasses.dataclass(frozen=True)
class SiteProfile:
    """What one simulated hospital changes in the demo simulator.

    Attributes:
        name: ``"a"`` or ``"b"``.
        simulator_version: Recorded in fingerprints and manifests.
        stream_key: Extra key of every random stream (``None``: site A's streams, unchanged).
        subject_id_base: Subject ids are this plus the subject's first case number.
        nibp_interval_s: Seconds between cuff readings (inclusive range).
        nibp_long_gap_s: A long gap's length (inclusive range) ...
        nibp_long_gap_p: ... and its probability per reading.
        nibp_stagger_p: Share of cuff readings whose three values are stamped apart.
        nibp_stagger_s: Largest spread (s) between the first and last value of such a reading.
        p_tiva: Share of cases under total intravenous anaesthesia (MAC never recorded).
        p_induction_hypo: Probability of hypotension after induction.
        hypo_per_h: Hypotension episodes per hour of maintenance.
        hyper_per_h: Hypertension episodes per hour of maintenance.
        patient: The subjects' traits.
        tracks: Track names of the seven signals in the site's ``.vital`` files (SIGNALS order).
        art_tracks: Track names of the arterial line's SBP, MAP, DBP.
        description: One line for manifests and READMEs.
    """

    name: str
    simulator_version: str
    stream_key: int | None
    subject_id_base: int
    nibp_interval_s: tuple[int, int]
    nibp_long_gap_s: tuple[int, int]
    nibp_long_gap_p: float
    nibp_stagger_p: float
    nibp_stagger_s: int
    p_tiva: float
    p_induction_hypo: float
    hypo_per_h: float
    hyper_per_h: float
    patient: PatientMix
    tracks: tuple[str, ...]
    art_tracks: tuple[str, str, str]
    description: str

    def report(self) -> dict[str, Any]:
        """The profile as plain JSON values (for the manifest of a non-default site)."""
        return dataclasses.asdict(self)


SITE_B_TRACKS: tuple[str, ...] = (
    "Intellivue/ECG_II",
    "Intellivue/NIBP_SYS",
    "Intellivue/NIBP_MEAN",
    "Intellivue/NIBP_DIA",
    "Intellivue/PLETH",
    "Intellivue/MAC",
    "Intellivue/BIS",
)
SITE_B_ART_TRACKS = ("Intellivue/ABP_SYS", "Intellivue/ABP_MEAN", "Intellivue/ABP_DIA")

SITE_B = SiteProfile(
    name="b",
    simulator_version="demo-site-b-1",
    stream_key=2,
    subject_id_base=200_000,
    nibp_interval_s=(175, 185),
    nibp_long_gap_s=(361, 900),
    nibp_long_gap_p=0.04,
    nibp_stagger_p=0.5,
    nibp_stagger_s=2,
    p_tiva=0.2,
    p_induction_hypo=0.65,
    hypo_per_h=0.85,
    hyper_per_h=0.45,
    patient=PatientMix(map=(82.0, 11.0, 62.0, 110.0), pp=(62.0, 11.0, 38.0, 95.0), hr=(68.0, 12.0, 45.0, 105.0)),
    tracks=SITE_B_TRACKS,
    art_tracks=SITE_B_ART_TRACKS,
    description="simulated site B: another monitor (other track names, cuff values stamped 1-2 s apart in half "
                "of the readings), a cuff every 3 min, an older and sicker mix, 20% TIVA cases without MAC",
)


def track_map(profile: SiteProfile) -> dict[str, list[str]]:
    """The ``--track-map`` that reads a site's ``.vital`` files (signal name -> its track name)."""
    from hypo.data.art import ART_SIGNALS
    from hypo.data.signals import SIGNALS

    return {**{s: [t] for s, t in zip(SIGNALS, profile.tracks)},
            **{s: [t] for s, t in zip(ART_SIGNALS, profile.art_tracks)}}
