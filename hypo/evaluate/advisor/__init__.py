"""The cuff advisor, simulated closed-loop: a model that asks for a cuff reading, scored on the arterial line.

Where a recording has an arterial line, the line plays the true pressure and every cuff reading is simulated from
it (:func:`hypo.data.cuff.simulate_readings`). A policy decides when the cuff inflates; each reading enters the
model's inputs only once it has reported, through the one causal pipeline (:mod:`hypo.infer.causal`). Scored in
the same simulation: the delay from each hypotension episode's onset (on the line) to the first reading that
shows it, against extra inflations per hour.

- :mod:`~hypo.evaluate.advisor.closed_loop`: one recording, its policies (advisor, fixed schedule, trend trigger);
- :mod:`~hypo.evaluate.advisor.scoring`: detection delays, the threshold fixed on validation at a budget, intervals;
- :mod:`~hypo.evaluate.advisor.job`: a dataset's validation and test recordings (``hypo advisor``);
- :mod:`~hypo.evaluate.advisor.figures`: delay against extra inflations per hour.

Entry points: :func:`hypo.evaluate.advisor.job.advisor_job`, :class:`hypo.evaluate.advisor.closed_loop.CaseLoop`.
"""
