"""Byzantine-robust aggregation: the rules (pure torch) and their fallback when a group is
too small for the rule asked for."""

from core.robust.rules import RULES, TooFewInputs, aggregate, choose

__all__ = ["RULES", "TooFewInputs", "aggregate", "choose"]
