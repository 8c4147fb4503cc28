"""``secretsd agent``: renders secrets into files for pods (init container and sidecar).

config (YAML + downward-API annotations) -> render (formats, sandboxed Jinja2)
-> files (atomic writes) -> actions (signal / exec on change); ``runner``
ties them to the SDK's client and watches; ``report`` tells secretsd which
versions are held.
"""
