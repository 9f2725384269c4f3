"""System contracts."""

from specs.system.ping import Ping

__all__ = ["Ping"]
