"""Node selection: which node of an upstream gets the next request."""
from .round_robin import RoundRobin

__all__ = ["RoundRobin"]
