"""The ``secretsd`` command: one thin module per command group."""
