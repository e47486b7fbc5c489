"""Sigma: load rules with pySigma, evaluate them in-process, correlate, convert."""

from detection.sigma.compile import CompiledRule, Logsource
from detection.sigma.engine import SigmaEngine
from detection.sigma.load import SigmaRuleSet, load_sigma_rules

__all__ = ["CompiledRule", "Logsource", "SigmaEngine", "SigmaRuleSet", "load_sigma_rules"]
