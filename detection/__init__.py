"""Vigie's detection core: event model, Sigma engine, YARA engine, indicators, correlation.

Imports nothing from `collector` or `api`; knows nothing of HTTP or databases. Its modules are
imported by name (`detection.event`, `detection.sigma.engine`...): the package itself imports
only what must come first, so that a command needing none of the rest (`vigie netmeta`) does
not pay for it at start-up.
"""

# First: it installs the finder that picks the `.py` files of the compiled modules when asked,
# or when edited since their extension was built.
import detection.compiled  # noqa: F401 - imported for its effect
