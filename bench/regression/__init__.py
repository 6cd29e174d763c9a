"""Comparing runs: result sets (baselines), the regression gate, and the history across commits."""
