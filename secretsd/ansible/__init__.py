"""Ansible integration: the ``secretsd`` lookup plugin (``plugins/lookup/secretsd.py``).

Point Ansible at the folder that holds it::

    export ANSIBLE_LOOKUP_PLUGINS="$(python -m secretsd.ansible)"

(or ``lookup_plugins = <that folder>`` in ansible.cfg), then in a playbook::

    password: "{{ lookup('secretsd', 'secretsd://apps/web/db#password') }}"

The plugin uses the SDK, configured like every client (``SECRETSD_ADDR``,
``SECRETSD_TOKEN`` / ``SECRETSD_TOKEN_FILE``, AppRole or Kubernetes login
variables, or the ``secretsd login`` file) or by the variables
``secretsd_addr`` and ``secretsd_token_file``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["LOOKUP_PLUGINS"]

#: The folder to put in ANSIBLE_LOOKUP_PLUGINS.
LOOKUP_PLUGINS = Path(__file__).resolve().parent / "plugins" / "lookup"
