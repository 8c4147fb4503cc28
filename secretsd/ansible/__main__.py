"""``python -m secretsd.ansible``: print the folder for ANSIBLE_LOOKUP_PLUGINS."""

from __future__ import annotations

from secretsd.ansible import LOOKUP_PLUGINS

print(LOOKUP_PLUGINS)
