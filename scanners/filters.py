"""Confidence tiers and the context filters a team tunes in ``[filters]``.

Kept apart from ``context.py`` (which decides *whether* a match is a
credential) because the config loader, the engine and the reports all need
the tiers and the filters, and none of them needs the context heuristics.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DEFAULT_EXAMPLE_HOSTS",
    "DEFAULT_FILTERS",
    "LOCAL_HOSTS",
    "TIERS",
    "Filters",
    "lower_tier",
]

TIERS = ("low", "medium", "high")
_RANK = {tier: index for index, tier in enumerate(TIERS)}


def lower_tier(a: str, b: str) -> str:
    """The weaker of two confidence tiers."""
    return a if _RANK[a] <= _RANK[b] else b


#: Hosts reserved for documentation (RFC 2606 / 6761): credentials there are examples.
DEFAULT_EXAMPLE_HOSTS = (
    "example.com",
    "example.org",
    "example.net",
    ".example",
    ".test",
    ".invalid",
    "host",
    "hostname",
    "server",
    "myhost",
    "your-host",
    "yourhost",
)
LOCAL_HOSTS = (
    "localhost",
    "127.0.0.1",
    "0.0.0.0",  # noqa: S104 - a host name to recognise, not a bind
    "::1",
    "[::1]",
    ".localhost",
    ".local",
)


@dataclass(frozen=True)
class Filters:
    """The context filters a team can tune in ``[filters]`` of ``.secretsd-scan.toml``.

    Each filter either drops a shape outright or keeps it at low confidence, so
    a team can trade noise against recall without writing rules.
    """

    placeholders: frozenset[str] = frozenset()  # extra whole values that are placeholders
    example_hosts: tuple[str, ...] = DEFAULT_EXAMPLE_HOSTS
    weak_passwords: str = "low"  # "low" | "drop": dictionary words, fixture-looking values
    uuid_values: str = "low"  # "low" | "drop": UUIDs under keys (API-key names: medium)
    test_paths: str = "keep"  # "keep" | "low" | "drop": generic findings under test paths
    encrypted_keys: str = "drop"  # "drop" | "low": passphrase-protected private keys

    def host_is_example(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        for entry in self.example_hosts:
            entry = entry.lower()
            if entry.startswith("."):
                if host.endswith(entry) or host == entry[1:]:
                    return True
            elif host == entry or host.endswith("." + entry):
                return True
        return False


DEFAULT_FILTERS = Filters()
