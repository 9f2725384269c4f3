"""Handlers of the policy contracts."""
