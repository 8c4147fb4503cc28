"""Where fragments come from: the working tree, staged changes, a commit range, history.

Each source has one method, ``fragments()``; the engine does not know which
one it is scanning. These modules are the only users of gitpython, and they
import it lazily so ``secretsd scan`` outside a repository never pays for it.
"""

from __future__ import annotations
