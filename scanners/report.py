"""Reports: text for people, JSON for machines, SARIF 2.1.0 for code-scanning UIs.

Secrets are redacted in every format unless ``show_secrets`` is set. The JSON
document is ``{"findings": [...], "stats": {...}}``; each finding carries at
least ``rule``, ``path`` (relative to the scanned root), ``line`` (1-based),
``commit`` (null outside git scans) and a stable ``fingerprint``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from secretsd.scanners.model import Finding

if TYPE_CHECKING:
    from secretsd.scanners.rules import RuleSet

__all__ = ["FIX_HINT", "FORMATS", "render", "to_json", "to_sarif", "to_text"]

FORMATS = ("text", "json", "sarif")
#: SARIF ``level`` and ``rank`` (0-100, higher is more certain) per confidence tier.
SARIF_LEVEL = {"high": "error", "medium": "warning", "low": "note"}
SARIF_RANK = {"high": 90.0, "medium": 60.0, "low": 30.0}
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
FIX_HINT = (
    "How to fix: store the value in secretsd (`secretsd scan --fix` does it for you, or\n"
    "  `secretsd put <path> <key>=...`), then reference it instead of the literal:\n"
    "  secretsd://<path>#<key>  (or read it from the environment via `secretsd run`).\n"
    "  Rotate any credential that was already committed or pushed.\n"
    "  A false positive? Add `# secretsd:ignore` to the line, an [allowlist] entry in\n"
    "  .secretsd-scan.toml, or accept today's findings with --write-baseline."
)


def finding_dict(finding: Finding, show_secrets: bool) -> dict[str, Any]:
    """The JSON shape of one finding."""
    commit = finding.commit
    return {
        "rule": finding.rule,
        "description": finding.description,
        "severity": finding.severity,
        "confidence": finding.confidence,
        "path": finding.path,
        "line": finding.line,
        "column": finding.column,
        "secret": finding.secret if show_secrets else finding.redacted_secret,
        "match": finding.redacted_line(show_secrets),
        "entropy": finding.entropy,
        "fingerprint": finding.fingerprint,
        "commit": commit.sha if commit else None,
        "author": commit.author if commit else None,
        "email": commit.email if commit else None,
        "date": commit.date if commit else None,
        "test_path": finding.test_path,
        "tags": list(finding.tags),
    }


def to_json(findings: Sequence[Finding], stats: dict[str, Any], show_secrets: bool) -> str:
    document = {
        "findings": [finding_dict(f, show_secrets) for f in findings],
        "stats": stats,
    }
    return json.dumps(document, indent=2, ensure_ascii=False)


def to_text(
    findings: Sequence[Finding], stats: dict[str, Any], show_secrets: bool, *, hint: bool = True
) -> str:
    lines: list[str] = []
    for f in findings:
        where = f"{f.path}:{f.line}:{f.column}"
        lines.append(f"{where}: {f.rule} ({f.description}) [{f.confidence} confidence]")
        lines.append(f"    {f.redacted_line(show_secrets)}")
        if f.commit is not None:
            lines.append(
                f"    commit {f.commit.sha[:12]} by {f.commit.author} <{f.commit.email}> "
                f"on {f.commit.date}"
            )
        lines.append(f"    fingerprint {f.fingerprint}")
    count = len(findings)
    mode = stats.get("mode", "tree")
    image = stats.get("image") or {}
    scanned = (
        f"{stats.get('commits', 0)} commit(s)"
        if mode in ("range", "history")
        else f"{stats.get('files', 0)} file(s) in {image.get('layers', 0)} layer(s) of image "
        f"{image.get('name', '')} ({image.get('id', '')[:19]})"
        if mode == "image"
        else f"{stats.get('files', 0)} file(s)"
        if mode == "tree"
        else "the staged changes"
    )
    summary = (
        f"{count} secret(s) found in {scanned} ({stats.get('bytes', 0) / 1e6:.1f} MB, "
        f"{stats.get('seconds', 0):.2f} s)."
        if count
        else f"No secrets found in {scanned} ({stats.get('seconds', 0):.2f} s)."
    )
    if lines:
        lines.append("")
    lines.append(summary)
    if count and hint:
        lines.append(FIX_HINT)
    return "\n".join(lines)


def to_sarif(
    findings: Sequence[Finding], stats: dict[str, Any], rules: RuleSet, show_secrets: bool
) -> str:
    from secretsd import __version__

    used = sorted({f.rule for f in findings})
    by_id = {rule.id: rule for rule in rules}
    rule_index = {rule_id: index for index, rule_id in enumerate(used)}
    descriptors = []
    for rule_id in used:
        rule = by_id.get(rule_id)
        text = rule.description if rule is not None else rule_id
        descriptors.append(
            {
                "id": rule_id,
                "name": rule_id,
                "shortDescription": {"text": text},
                "fullDescription": {"text": f"{text}: a credential committed in plain text."},
                "help": {"text": FIX_HINT},
                "defaultConfiguration": {
                    "level": SARIF_LEVEL[rule.base_confidence] if rule else "warning"
                },
                "properties": {"tags": ["security", "secret", *(rule.tags if rule else ())]},
            }
        )
    results = []
    for f in findings:
        result: dict[str, Any] = {
            "ruleId": f.rule,
            "ruleIndex": rule_index[f.rule],
            "level": SARIF_LEVEL[f.confidence],
            "rank": SARIF_RANK[f.confidence],
            "message": {
                "text": f"{f.description} ({f.redacted_secret if not show_secrets else f.secret}, "
                f"{f.confidence} confidence)"
            },
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": f.path, "uriBaseId": "SRCROOT"},
                        "region": {
                            "startLine": f.line,
                            "startColumn": f.column,
                            "snippet": {"text": f.redacted_line(show_secrets)},
                        },
                    }
                }
            ],
            "partialFingerprints": {"secretsd/v1": f.fingerprint},
            "properties": {"confidence": f.confidence},
        }
        if f.commit is not None:
            result["properties"].update(
                {
                    "commit": f.commit.sha,
                    "author": f.commit.author,
                    "email": f.commit.email,
                    "date": f.commit.date,
                }
            )
        results.append(result)
    document = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "secretsd-scan",
                        "version": __version__,
                        "informationUri": "https://github.com/secretsd/secretsd",
                        "rules": descriptors,
                    }
                },
                "results": results,
                "originalUriBaseIds": {"SRCROOT": {"description": {"text": "The scanned root"}}},
                "properties": {"stats": stats},
            }
        ],
    }
    return json.dumps(document, indent=2, ensure_ascii=False)


def render(
    fmt: str,
    findings: Sequence[Finding],
    stats: dict[str, Any],
    rules: RuleSet,
    *,
    show_secrets: bool = False,
) -> str:
    """The report in ``fmt`` (one of FORMATS)."""
    if fmt == "json":
        return to_json(findings, stats, show_secrets)
    if fmt == "sarif":
        return to_sarif(findings, stats, rules, show_secrets)
    return to_text(findings, stats, show_secrets)
