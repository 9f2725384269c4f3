"""Implementations of the contracts, one package per domain, mirroring specs/."""
