"""The collector agent: sources, privacy, spool, shipping.

`detection` is imported first: with VIGIE_PURE_PYTHON=1 it makes the compiled modules load
from their `.py` files (detection/compiled.py), and collector's own are among them.
"""

import detection  # noqa: F401 - imported for its effect
