"""The detection engine: prefilter, exact match, then context, entropy and checksum checks.

``Engine.scan(fragment)`` is the only entry point. The matcher (Hyperscan or
the pure-``re`` fallback) says which rules can match where; each window is
re-matched with the rule's Python regex to get the secret group; each match
then has to pass the checks its rule kind asks for (see ``context.py``).
Overlapping matches of several rules on the same secret become one finding,
the most specific rule winning (higher ``priority``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from secretsd.scanners import columns, context, decode, entities
from secretsd.scanners.checksums import basic_auth_pair, key_body_cut_short, validate
from secretsd.scanners.lines import line_around
from secretsd.scanners.matcher import Matcher, make_matcher
from secretsd.scanners.model import (
    Finding,
    Fragment,
    Location,
    diff_file_parts,
    unquote_git_path,
)
from secretsd.scanners.rules import Rule, RuleSet
from secretsd.scanners.spot import Spot

__all__ = ["IGNORE_MARKERS", "Engine"]

#: Inline markers that silence a finding on their line (ours first; the others
#: are honoured so a repository migrating from a peer keeps its annotations).
IGNORE_MARKERS = (b"secretsd:ignore", b"gitleaks:allow", b"pragma: allowlist secret")
#: How much of a long line around a hit is read as its context (and shown in reports).
_LINE_CONTEXT = 2048
#: A line longer than this is minified or generated text (see ``_minified``).
_MINIFIED_LINE = 5000
_PEM_BODY = re.compile(r"[A-Za-z0-9+/=]{16,}")
# PKCS#8 "ENCRYPTED PRIVATE KEY" and legacy PEM "Proc-Type: 4,ENCRYPTED": useless without
# their passphrase.
_ENCRYPTED_KEY = re.compile(r"BEGIN ENCRYPTED PRIVATE KEY|Proc-Type:\s*4,\s*ENCRYPTED")


@dataclass(slots=True)
class _Hit:
    rule: Rule
    start: int
    end: int
    secret: str
    key: str
    op: str = ""
    loc: Location | None = None
    confidence: str = "medium"


def _new_file_lines(rules: tuple[Rule, ...]) -> re.Pattern[bytes] | None:
    """The ``+++ <path>`` lines of a diff (``--no-prefix``) whose path holds one of the path
    rules' keywords (for such a rule, literals of the path): one C-speed pass, where reading
    every file header of a long history in Python cost a third of a second. A path rule
    without keywords makes every file a candidate."""
    if not rules:
        return None
    if not all(rule.keywords for rule in rules):
        return re.compile(rb"\n\+\+\+ ([^\n]*)")
    keywords = sorted({k.lower() for rule in rules for k in rule.keywords})
    words = b"|".join(re.escape(k.encode()) for k in keywords)
    return re.compile(rb"(?i)\n\+\+\+ ([^\n]*(?:" + words + rb")[^\n]*)")


#: Words and numbers joined by separators: ``secret-value-9876``, ``THIS-IS-A-LONG-VALUE``.
_WORDY_BODY = re.compile(
    r"(?:[A-Za-z]+|\d+)(?:[-_.](?:[A-Za-z]+|\d+)){2,}"
    r"|(?:[A-Z][a-z]+){3,}\d*"  # ghp_ReleaseBotTokenComesFromVaultLaterToday: words, typed
)
#: Token prefixes that are also words or versions people put at the start of their own values
#: (``secret_sauce``, ``test_password``, ``api-key-1``): no evidence of a service's token.
_WORD_PREFIXES = (
    "access-", "api-", "django-insecure-", "ext_", "http", "ico-", "key-", "live_", "mob-",
    "pat.", "pul-", "sat.", "sdk-", "secret_", "test_", "v1.0-",
)  # fmt: skip


def _vendor_prefixes(rules: tuple[Rule, ...]) -> tuple[tuple[str, Rule], ...]:
    """Lower-cased token prefixes that only their service issues, longest first, with the
    rule that knows the service's format: a prefix holds a separator and is not a word
    (``_WORD_PREFIXES``)."""
    found = [
        (lowered, rule)
        for rule in rules
        if rule.kind == "token" and rule.priority >= 10 and rule.enabled
        for prefix in rule.literal_prefixes
        if len(lowered := prefix.lower()) >= 4
        and any(mark in prefix for mark in "_-.$")
        and not lowered.startswith(_WORD_PREFIXES)
    ]
    return tuple(sorted(found, key=lambda item: len(item[0]), reverse=True))


#: A path pattern's leading global flag (``(?i)``), which a combined pattern must scope, and a
#: numbered backreference, which would point at another branch's group once patterns are joined.
_LEADING_FLAGS = re.compile(r"\(\?([aiLmsux]+)\)")
_NUMBERED_BACKREFERENCE = re.compile(r"\\[1-9]")


def any_path_pattern(rules: tuple[Rule, ...]) -> re.Pattern[str] | None:
    """One pattern that finds a path any of ``rules`` applies to (their ``paths`` joined, each
    leading ``(?i)`` scoped to its own branch): a tree scan's usual file wants none of the
    path rules, and one search says so where one per rule cost nearly a tenth of the scan. None
    when a pattern cannot be joined that way (a flag elsewhere than at its start, a numbered
    backreference, a group name used twice); then each rule's own pattern is asked, as it always
    is for the files this one lets through."""
    branches = []
    for rule in rules:
        pattern = rule.paths or ""
        lead = _LEADING_FLAGS.match(pattern)
        body = pattern[lead.end() :] if lead else pattern
        if _LEADING_FLAGS.search(body) or _NUMBERED_BACKREFERENCE.search(body):
            return None
        branches.append(f"(?{lead.group(1)}:{body})" if lead else f"(?:{body})")
    try:
        return re.compile("|".join(branches)) if branches else None
    except re.error:
        return None


def _candidate_files(
    fragment: Fragment, new_files: re.Pattern[bytes] | None
) -> list[tuple[str, int, int]]:
    """``(path, start, end)`` of the files in ``fragment`` that a path rule may want: the
    whole fragment (a tree scan's file), or each candidate file's part of a diff stream."""
    data = fragment.data
    if fragment.locate is None:
        return [(fragment.path, 0, len(data))]
    if new_files is None:
        return []
    found: list[tuple[str, int, int]] = []
    for header, end in diff_file_parts(data, new_files):
        raw = header.group(1).rstrip(b"\r")
        if raw != b"/dev/null":
            found.append((unquote_git_path(raw.split(b"\t")[0]), header.end(), end))
    return found


def _names_concrete_user(match: re.Match[bytes], data: bytes, start: int, end: int) -> bool:
    """The rule's ``user`` group names a concrete user, or (without one) a concrete user is
    set within a few lines of the match."""
    user = match.groupdict().get("user")
    if user is not None:
        return context.concrete_user(user.decode("utf-8", "replace"))
    return context.concrete_user_near(data, start, max(start, end))


def _weak_basic_auth(secret: str, filters: context.Filters, path: str) -> bool:
    """The ``user:password`` inside a Basic credential is weak or a role-word pair, judged as
    a URI's would be (weak test passwords are reported with doubt, issue 12)."""
    pair = basic_auth_pair(secret)
    if pair is None:
        return False
    user, password = pair
    found = context.judge_uri_password(
        user, password, "", filters, test_path=context.is_test_path(path)
    )
    return found in (None, "low")


class Engine:
    """Scan fragments with one rule set; cheap to call, costly to build (build it once)."""

    def __init__(
        self,
        rules: RuleSet,
        *,
        matcher: str = "auto",
        filters: context.Filters = context.DEFAULT_FILTERS,
    ) -> None:
        self.rules = rules
        self.filters = filters
        # Rules for one kind of file (``paths``) run only on such files, not in the matcher:
        # their patterns (a bare hex or base64 line) would hit everywhere else.
        self._rules = tuple(rule for rule in rules.rules if rule.paths is None)
        self._path_rules = tuple(rule for rule in rules.rules if rule.paths is not None)
        self._new_files = _new_file_lines(self._path_rules)
        self._any_path = any_path_pattern(self._path_rules)
        self._order = {rule.id: index for index, rule in enumerate(rules.rules)}
        self._vendor_prefixes = _vendor_prefixes(rules.rules)
        #: One ``startswith`` test spares the loop for the usual value, which has none.
        self._any_vendor_prefix = tuple(prefix for prefix, _ in self._vendor_prefixes)
        # The cache key names what the database holds: the rules without the path rules.
        cache_key = f"{rules.fingerprint()}:without-path-rules"
        self.matcher: Matcher = make_matcher(self._rules, cache_key, matcher)

    # -- per-kind checks ----------------------------------------------------

    def _counterfeit(self, secret: str, rule: Rule) -> bool:
        """A value that starts with a service's token prefix (``sk-ant-api03-``, ``ghp_``,
        ``glpat-``) but is not that service's token and was typed by a person
        (``sk-ant-api03-test``): the service never issued it, so a rule that caught it by its
        name (``api_key: ...``) or by a shorter prefix (OpenAI's ``sk-``) finds a placeholder.
        A rule that knows the prefix itself judges its own format."""
        lowered = secret.lower()
        if not lowered.startswith(self._any_vendor_prefix):
            return False
        for prefix, owner in self._vendor_prefixes:
            if lowered.startswith(prefix):
                if owner is rule or any(len(own) >= len(prefix) for own in rule.literal_prefixes):
                    return False
                found = owner.compiled.search(secret.encode("utf-8", "replace"))
                if found is not None:
                    # the service's shape; where the service signs its tokens with a checksum
                    # (GitHub's CRC32), a failed one says a person typed it
                    body = found.group(owner.group).decode("utf-8", "replace")
                    return owner.checksum is not None and not validate(owner.checksum, body)
                # A random body of another length may be a format the rule does not know
                # yet; a short or wordy one (``test``, ``secret-value-9876``) was typed.
                rest = secret[len(prefix) :]
                return len(rest) < 16 or _WORDY_BODY.fullmatch(rest) is not None
        return False

    def _accept(
        self, rule: Rule, match: re.Match[bytes], data: bytes, hit: _Hit, path: str = ""
    ) -> str | None:
        """The hit's confidence tier, or None when its context says it is no credential."""
        secret = hit.secret
        if len(secret) < rule.min_length or context.is_documented_sample(secret):
            return None
        if self._counterfeit(secret, rule):
            return None
        line_start, line_end = _around(data, hit.start, hit.end)
        line = data[line_start:line_end].decode("utf-8", "replace")
        spot = _spot(match, data, line_start, line, hit)
        kind = rule.kind
        filters = self.filters
        tier: str = rule.base_confidence
        if kind in ("generic", "password"):
            host = _text(match.groupdict().get("host"))
            if host and filters.host_is_example(host):
                return None  # curl -u demo:pw https://api.example.com: a documented sample
            if context.anonymous_login(_text(match.groupdict().get("user"))):
                return None  # ftp.login("anonymous", "me@corp.io"): anonymous FTP
            found = context.judge_assignment(
                spot,
                kind=kind,
                min_entropy=rule.min_entropy,
                min_length=rule.min_length,
                op=hit.op,
                filters=filters,
                path=path,
                user_nearby=kind == "password"
                and secret.lower() in context.DOC_PASSWORDS
                and (
                    context.key_names_account(spot.key)
                    or _names_concrete_user(match, data, line_start, line_end)
                ),
            )
            if found is None:
                return None
            if (
                found == "low"
                and "credential-slot" in rule.tags
                and context.is_hash_or_uuid(secret)
            ):
                found = "medium"  # only a credential stands there: hex or a UUID is the key
            if _minified(data, line_start, line_end):
                found = "low"  # a name-based guess inside a bundle or source map: code, mostly
            tier = context.lower_tier(tier, found)
        elif kind == "uri":
            groups = match.groupdict()
            found = context.judge_uri_password(
                _text(groups.get("user")),
                secret,
                _text(groups.get("host")),
                filters,
                test_path=context.is_test_path(path),
            )
            if found is None:
                return None
            tier = context.lower_tier(tier, found)
        elif kind == "private-key":
            body = "".join(_PEM_BODY.findall(secret))
            head = Spot(line="", value=body[:200], at=-1)  # the body alone: no line to read
            if not (len(body) >= 64 and context.judge_token(head)):
                return None
            if _ENCRYPTED_KEY.search(secret):
                if filters.encrypted_keys == "drop":
                    return None
                tier = "low"
            elif key_body_cut_short(body):
                return None
        else:
            ok = context.judge_token(spot)
            floor = context.entropy_floor(secret, rule.min_entropy)
            if ok and floor and context.shannon_entropy(secret) < floor:
                ok = False
            if not ok:
                return None
        if rule.checksum is not None and not validate(rule.checksum, secret):
            return None
        if rule.checksum == "basic-auth" and _weak_basic_auth(secret, filters, path):
            tier = "low"  # a role-word pair, or a weak pair in a test: reported with doubt
        if rule.allow_compiled and any(p.search(secret) for p in rule.allow_compiled):
            return None
        return tier

    # -- scanning -------------------------------------------------------------

    def _matches(self, fragment: Fragment) -> list[_Hit]:
        """Accepted hits; a value that a specific rule recognised and rejected (bad checksum,
        example key) vetoes the generic rules on the same span."""
        data = fragment.data
        hits: list[_Hit] = []
        vetoed: list[tuple[int, int]] = []
        windows_by_rule: list[tuple[Rule, list[tuple[int, int]]]] = [
            (self._rules[index], sorted(windows))
            for index, windows in self.matcher.windows(data).items()
        ]
        if self._path_rules:
            files = _candidate_files(fragment, self._new_files)
            if self._any_path is not None:
                files = [f for f in files if self._any_path.search(f[0]) is not None]
            windows_by_rule += [
                (rule, spans)
                for rule in self._path_rules
                if (spans := [(a, b) for path, a, b in files if rule.applies_to(path)])
            ]
        for rule, windows in windows_by_rule:
            group = rule.group
            # Resume after the last *match*, not the last window: a multi-line secret whose
            # start lies inside an earlier window but whose end lies beyond it (the second
            # of several private keys in one diff) is matched from its own window.
            matched_end = -1
            for start, end in windows:
                start = max(start, matched_end)
                if start >= end:
                    continue
                for match in rule.compiled.finditer(data, start, end):
                    matched_end = max(matched_end, match.end())
                    span = match.span(group)
                    if span[0] < 0:
                        continue
                    raw = data[span[0] : span[1]]
                    groups = match.groupdict()
                    hit = _Hit(
                        rule,
                        span[0],
                        span[1],
                        raw.decode("utf-8", "replace"),
                        _text(groups.get("key")),
                        _text(groups.get("op")),
                    )
                    if not hit.secret:
                        continue
                    tier = self._accept_with_path(rule, match, data, hit, fragment)
                    if tier is not None:
                        hit.confidence = tier
                        hits.append(hit)
                    elif rule.kind == "token" and rule.priority >= 10:
                        vetoed.append((hit.start, hit.end))
        if vetoed:
            hits = [
                h
                for h in hits
                if h.rule.priority >= 10
                or not any(h.start < end and start < h.end for start, end in vetoed)
            ]
        return hits

    def _accept_with_path(
        self, rule: Rule, match: re.Match[bytes], data: bytes, hit: _Hit, fragment: Fragment
    ) -> str | None:
        path = fragment.path
        if fragment.locate is not None:
            hit.loc = fragment.locate(hit.start)
            if hit.loc is None:
                return None  # not an added line of the diff
            path = hit.loc.path
        if (
            "config-only" in rule.tags
            and context.is_code_path(path)
            and not ("text-in-code" in rule.tags and _in_code_text(match, data, hit))
        ):
            return None  # an unquoted right-hand side in program source is an expression
        tier = self._accept(rule, match, data, hit, path)
        if tier is not None and rule.kind in ("generic", "password"):
            policy = self.filters.test_paths
            if policy != "keep" and context.is_test_path(path):
                tier = None if policy == "drop" else "low"
        return tier

    def scan(self, fragment: Fragment) -> list[Finding]:
        """Every accepted, de-duplicated finding in ``fragment``, in file order, including the
        cells of credential columns (``columns.py``), lines written with HTML character
        references (``entities.py``) and the decoded ``data:`` values of Kubernetes Secrets
        (``decode.py``)."""
        findings = self._scan_plain(fragment)
        unescaped, reread = entities.escaped_line_findings(self._scan_plain, fragment)
        if reread:  # a line read with its &quot; and &lt; replaced stands for the line
            findings = [f for f in findings if (f.path, f.line) not in reread] + unescaped
            findings.sort(key=lambda f: (f.path, f.line, f.column))
        cells = columns.column_findings(self._scan_plain, fragment)
        if cells:
            seen = {(f.path, f.line) for f in findings}
            findings += [f for f in cells if (f.path, f.line) not in seen]
            findings.sort(key=lambda f: (f.path, f.line, f.column))
        decoded: list[Finding] = []
        encoded: set[tuple[str, int, str]] = set()
        if b"Secret" in fragment.data:  # one pass over the bytes for both kinds of manifest
            if decode.has_k8s_secret(fragment.data):
                decoded, encoded = decode.k8s_secret_findings(self._scan_plain, fragment)
            encoded |= decode.sealed_values(fragment)
        if fragment.read_file is not None:  # a diff: Secrets whose kind: is outside the hunk
            flagged = {(f.path, f.line) for f in findings}
            decoded += decode.k8s_context_findings(self._scan_plain, fragment, encoded, flagged)
        if not encoded:
            return findings
        by_line: dict[tuple[str, int], list[str]] = {}
        for path, line, value in encoded:
            by_line.setdefault((path, line), []).append(value)
        # A plain finding inside a decoded value (the whole base64 text, or a part of it that a
        # rule matched) was judged through its decoded text already.
        kept = [
            f
            for f in findings
            if not any(f.secret in value for value in by_line.get((f.path, f.line), ()))
        ]
        return sorted(kept + decoded, key=lambda f: (f.path, f.line, f.column))

    def _scan_plain(self, fragment: Fragment) -> list[Finding]:
        """The rules on the fragment's text as it is."""
        hits = self._matches(fragment)
        if not hits:
            return []
        order = self._order
        hits.sort(key=lambda h: (h.start, -h.rule.priority, -(h.end - h.start), order[h.rule.id]))
        kept: list[_Hit] = []
        for hit in hits:
            clash = next(
                (k for k in kept if hit.start < k.end and k.start < hit.end),
                None,
            )
            if clash is None:
                kept.append(hit)
            elif (hit.rule.priority, hit.end - hit.start, -order[hit.rule.id]) > (
                clash.rule.priority,
                clash.end - clash.start,
                -order[clash.rule.id],
            ):  # the most specific rule wins; on a tie, the first in the rules file
                kept[kept.index(clash)] = hit
        data = fragment.data
        findings: list[Finding] = []
        line_index, offset = 0, 0
        # Every secret on a line is masked in each finding's copy of that line, so a line
        # holding a key id and its secret never shows one in the other's report.
        by_line: dict[int, list[str]] = {}
        for hit in kept:
            by_line.setdefault(data.rfind(b"\n", 0, hit.start) + 1, []).append(hit.secret)
        for hit in sorted(kept, key=lambda h: h.start):
            line_start = data.rfind(b"\n", 0, hit.start) + 1
            line_end = data.find(b"\n", hit.start)
            raw_line = data[line_start : line_end if line_end >= 0 else len(data)]
            if any(marker in raw_line for marker in IGNORE_MARKERS):
                continue
            # The report shows the hit's (first) line, cut around the hit on a long line; the
            # whole secret stays in it, so that redaction can mask all of it.
            shown = line_around(
                data, hit.start, hit.start, _LINE_CONTEXT, hit.end - hit.start + _LINE_CONTEXT
            )
            column = len(data[line_start : hit.start].decode("utf-8", "replace")) + 1
            if hit.loc is not None:  # a diff line: its first column is the +/- marker
                path, line, commit = hit.loc.path, hit.loc.line, hit.loc.commit
                column = max(1, column - 1)
            else:
                line_index += data.count(b"\n", offset, hit.start)
                offset = hit.start
                path, line, commit = (
                    fragment.path,
                    fragment.first_line + line_index,
                    fragment.commit,
                )
            findings.append(
                Finding(
                    rule=hit.rule.id,
                    description=hit.rule.description,
                    path=path,
                    line=line,
                    column=column,
                    secret=hit.secret,
                    line_text=data[shown.start : shown.end].decode("utf-8", "replace"),
                    severity=hit.rule.severity,
                    commit=commit,
                    test_path=context.is_test_path(path),
                    entropy=round(context.shannon_entropy(hit.secret), 3),
                    tags=hit.rule.tags,
                    confidence=hit.confidence,
                    public_prefix=hit.rule.public_prefix(hit.secret),
                    line_secrets=tuple(x for x in by_line[line_start] if x != hit.secret),
                )
            )
        return findings


def _in_code_text(match: re.Match[bytes], data: bytes, hit: _Hit) -> bool:
    """The match's key stands in text inside program source: a string literal or an
    element's text (``console.log('Contraseña: ...')``, ``<p>Mot de passe: ...</p>``, or a
    line of text right under a line that ends an opening tag)."""
    start = match.start("key") if "key" in match.re.groupindex else hit.start
    if start < 0:
        start = hit.start
    line_start = data.rfind(b"\n", 0, start) + 1
    before = data[line_start:start]
    if not before.strip() and line_start > 0:
        # An element's text on its own line (JSX, Vue, HTML templates): the line above opens it.
        above = data[data.rfind(b"\n", 0, line_start - 1) + 1 : line_start - 1].rstrip()
        if above.endswith(b">") and not above.endswith((b"=>", b"->", b">>")):
            return True
    return context.within_code_text(before.decode("utf-8", "replace"))


def _minified(data: bytes, line_start: int, line_end: int) -> bool:
    """The hit's line (whose context ``_around`` cut) is longer than people write: a minified
    bundle, a source map or generated data, where a password-named key beside a string is
    code far more often than a credential (swagger-ui's bundles: seven such guesses, none
    a credential). Known formats are judged there as anywhere."""
    if line_end - line_start < _MINIFIED_LINE // 2:
        return False  # ``_around`` did not cut it: a line of ordinary length
    start = data.rfind(b"\n", 0, line_start + 1) + 1
    end = data.find(b"\n", line_end)
    return (len(data) if end < 0 else end) - start > _MINIFIED_LINE


def _around(data: bytes, start: int, end: int) -> tuple[int, int]:
    """The line holding ``data[start:end]``, cut to ``_LINE_CONTEXT`` bytes either side: what
    the context checks read."""
    line = line_around(data, start, end, _LINE_CONTEXT, _LINE_CONTEXT)
    return line.start, line.end


def _spot(match: re.Match[bytes], data: bytes, line_start: int, line: str, hit: _Hit) -> Spot:
    """Where the match put the value and its key on the decoded line, in characters: every
    context check reads this one spot."""

    def column(offset: int) -> int:
        return len(data[line_start:offset].decode("utf-8", "replace")) if offset >= 0 else -1

    key_start = match.start("key") if "key" in match.re.groupindex else -1
    key_at = column(key_start) if key_start >= line_start else None
    return Spot.locate(line, hit.secret, hit.key, column(hit.start), key_at)


def _text(raw: bytes | None) -> str:
    return raw.decode("utf-8", "replace") if raw else ""
