"""Serve layer: a model live on monitor streams, in silent mode (``hypo serve``, ``hypo replay``).

:mod:`~hypo.serve.protocol` parses Vital Recorder's payloads (VitalDB's Web Monitoring JSON, over HTTP or
Socket.IO); :mod:`~hypo.serve.grid` and :mod:`~hypo.serve.bed` put each bed's records on the model's 1-s grid as the
``.vital`` reader does; :mod:`~hypo.serve.scorer` is the one place where recent seconds become a scored window
(phase 2 plugs the shared causal pipeline in there); :mod:`~hypo.serve.service` owns the beds, steps their alarms
(:func:`hypo.infer.alarm_policy.alarm_step`) and writes the silent-trial log (:mod:`~hypo.serve.trial_log`);
:mod:`~hypo.serve.app` is the HTTP, Socket.IO and page side; :mod:`~hypo.serve.deployments` the Ray Serve
application; :mod:`~hypo.serve.replay` streams recordings in the recorder's format.

A layer above :mod:`hypo.infer`, beside :mod:`hypo.evaluate`, below :mod:`hypo.cli`: it may import
:mod:`hypo.infer`, :mod:`hypo.learn`, :mod:`hypo.data` and the top-level modules, never :mod:`hypo.search` or
:mod:`hypo.evaluate`; nothing below imports it.
"""
