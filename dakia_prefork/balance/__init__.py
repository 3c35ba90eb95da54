"""Node selection: which node of an upstream gets the next request, and the node state it uses."""
from .base import Balancer, Rotation
from .factory import ALGORITHMS, BALANCERS, make_balancer
from .hashing import HashRing, IpHash, UrlHash
from .least import LeastConnection, LeastResponseTime, PowerOfTwoChoices
from .round_robin import RoundRobin
from .state import PASSIVE_OFF, PassiveHealth, node_key
from .weighted import Weighted, swrr_cycle
from .weighted_random import WeightedRandom

__all__ = ["ALGORITHMS", "BALANCERS", "Balancer", "HashRing", "IpHash", "LeastConnection",
           "LeastResponseTime", "PASSIVE_OFF", "PassiveHealth", "PowerOfTwoChoices",
           "Rotation", "RoundRobin", "UrlHash", "Weighted", "WeightedRandom", "make_balancer",
           "node_key", "swrr_cycle"]
