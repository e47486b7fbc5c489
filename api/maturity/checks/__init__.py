"""The registry of automatic checks, by name (`@check("network.smbv1", Params)`)."""

from api.maturity.checks import network, operations, windows
from api.maturity.checks.base import REGISTRY, CheckSpec, Outcome, Params, check

__all__ = ["REGISTRY", "CheckSpec", "Outcome", "Params", "check"]
del network, operations, windows
