"""Test-time compute on the trained grid (Snell et al. 2024): sampling, verifiers, search, and their FLOPs."""
