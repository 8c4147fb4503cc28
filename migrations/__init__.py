"""Secret migrations: move Ansible-vault values and Kubernetes Secrets into secretsd.

(Secret migrations, not database schema migrations: those are Alembic
revisions in ``secretsd/db/schema``.) Importers are pure readers that yield
:class:`Imported` items; :func:`build_plan`, :func:`apply_plan` and
:func:`verify` are shared by all of them and talk to secretsd only through
the public SDK (``secretsd.Client``), so every write is authorised and
audited like any other. See ``migrations/README.md``.
"""

from __future__ import annotations

from secretsd.migrations.model import Imported, Importer, Problem, Source

__all__ = ["Imported", "Importer", "Problem", "Source"]
