"""Contracts only: models and command/query declarations, grouped by domain. No I/O."""
