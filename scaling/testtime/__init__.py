"""Test-time compute on the trained grid (Snell et al. 2024): a checkable task, constrained sampling, verifiers,
search, revisions, their FLOPs, and the study that weighs them against pretraining."""
