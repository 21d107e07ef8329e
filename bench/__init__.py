"""Benchmarks (`make bench`): speeds and accuracies measured side by side in one process, written to results/."""
