"""``hypo export``: a search's trial written as TorchScript + sidecar, with the alarm policy validated with it.

    export_model("runs/hypo-search", "model.pt")                      # the leaderboard's first trial
    export_model("runs/hypo-search", "model.pt", alarm=AlarmConfig(m=3), alarm_cases=20)

The trial is traced in memory by :func:`hypo.evaluate.export_trial.trial_model` (the same object the alarm
evaluation and the external validation score); its alarm policy is fixed on its dataset's validation recordings by
the alarm evaluation's own replay and threshold choice (:func:`validated_policy`); the pair is written by
:func:`hypo.infer.export.write_exported`. A module of its own: the alarm evaluation imports ``export_trial``.
"""

from __future__ import annotations

from hypo.errors import ConfigError, HypoError
from hypo.evaluate.export_trial import trial_model
from hypo.infer.alarm_policy import Policy
from hypo.infer.export import check_out_file, sidecar_path, write_exported
from hypo.infer.model import ExportedModel
from hypo.infer.sidecar import AlarmPolicy, Sidecar
from hypo.learn.operating_point import SPECIFICITY

DEFAULT_ALARM = "default"  # export_model's alarm=: the default AlarmConfig (the alarm evaluation's defaults)


def validated_policy(model: ExportedModel, data_dir: str, cfg, max_cases: int | None = None,
                     log=print) -> AlarmPolicy | None:
    """The alarm policy to store with a model: its threshold fixed on its dataset's validation recordings.

    The validation split's recordings are replayed through the causal pipeline exactly as the alarm evaluation
    replays them (:func:`hypo.evaluate.alarms.evaluation.choose_thresholds`), and the threshold for ``cfg``'s
    false-alarm target is kept with the policy it was scored under (``m``, hysteresis, max gap, stride).

    Args:
        model: The model (a trial traced in memory).
        data_dir: Its window dataset.
        cfg: The :class:`~hypo.evaluate.alarms.metrics.AlarmConfig` (policy, stride, targets, scoring).
        max_cases: At most this many validation recordings (a deterministic subsample).
        log: Where progress lines go.

    Returns:
        The sidecar's :class:`~hypo.infer.sidecar.AlarmPolicy`, or None when the recordings cannot be replayed
        (said in one line: a source that cannot be rebuilt, or no validation case scored).
    """
    from hypo.evaluate.alarms.evaluation import AlarmOptions, choose_thresholds
    from hypo.evaluate.alarms.replay import Recordings

    try:
        recordings = Recordings.of(data_dir)
        opts = AlarmOptions(thresholds_from="val", cfg=cfg, feature_model=None, max_cases=max_cases)
        chosen, _, val = choose_thresholds({"model": model}, recordings, opts, None, log)
    except ConfigError:  # --alarm-horizon the model or dataset lacks: refused, not exported without a policy
        raise
    except HypoError as exc:
        log(f"  no alarm policy stored with the model: {exc}")
        return None
    spec = chosen["model"]["fa_target"]
    return AlarmPolicy(
        threshold=float(spec["threshold"]), m=cfg.m, hysteresis=cfg.hysteresis, max_gap_s=cfg.max_gap_s,
        stride_s=cfg.stride_s, horizon_s=cfg.horizon_s, operating_point="fa_target", target=cfg.fa_target_per_h,
        met=bool(spec["met"]),
        validation={**spec["validation"], "recordings": val.scored, "hours": round(val.hours, 2)},
        chosen_on={"data": data_dir, "dataset_fingerprint": recordings.manifest.fingerprint, "split": "val"})


def export_model(exp_path: str, out: str, trial: str | None = None, specificity: float = SPECIFICITY,
                 log=print, alarm=DEFAULT_ALARM, alarm_cases: int | None = None) -> Sidecar:
    """Export the chosen trial's best checkpoint as TorchScript plus sidecar.

    Args:
        exp_path: Experiment folder of a search.
        out: Path of the TorchScript file (the sidecar goes beside it, suffix ``.json``).
        trial: Trial id (default: the leaderboard's first).
        specificity: Specificity of the window operating point's thresholds, fixed on the validation split.
        log: Where summary lines go.
        alarm: The alarm policy and scoring (:class:`~hypo.evaluate.alarms.metrics.AlarmConfig`) under which the
            alarm threshold is fixed on the validation recordings and stored (:func:`validated_policy`); None:
            store no alarm policy.
        alarm_cases: At most this many validation recordings for it.

    Returns:
        The sidecar (with ``model_sha256``), as written.

    Raises:
        HypoError: When the trace disagrees with the eager model, or anything :func:`hypo.evaluate.trials.choose_trial`
            and :func:`hypo.evaluate.trials.load_trial` refuse.
    """
    if not 0 < specificity < 1:
        raise ConfigError(f"--specificity must be in (0, 1), got {specificity}")
    if alarm == DEFAULT_ALARM:
        from hypo.evaluate.alarms.metrics import AlarmConfig

        alarm = AlarmConfig()
    check_out_file(out)
    model, chosen, cfg = trial_model(exp_path, trial, specificity)
    policy = validated_policy(model, chosen.data_dir, alarm, alarm_cases, log) if alarm is not None else None
    out, sidecar = write_exported(model.module, model.sidecar.model_copy(update={"alarm_policy": policy}), out)
    t = sidecar.thresholds
    log(f"trial {chosen.trial_id} (rank {chosen.rank}: {cfg.model.name} k={cfg.model.k} {cfg.loss}), epoch "
        f"{chosen.epoch}; trace matches the model within {sidecar.verification.max_abs_difference:.1e}"
        + ("  [trained on simulated data]" if sidecar.simulated else ""))
    log(f"  window operating point (validation, {100 * specificity:.0f}% specificity): p(hypotension) >= "
        f"{t.p_hypotension:.4f}, p(hypertension) >= {t.p_hypertension:.4f}")
    if policy is not None:
        runs = Policy(policy.threshold, policy.m, policy.hysteresis, policy.max_gap_s, policy.stride_s)
        log(f"  alarm policy (hypo serve runs it): {runs.text()}; {policy.describe()}")
    if sidecar.tolerates_missing:
        log(f"  takes these signal groups as missing (NaN): {', '.join(sidecar.tolerates_missing)}")
    log(f"wrote {out} and {sidecar_path(out)}")
    return sidecar
