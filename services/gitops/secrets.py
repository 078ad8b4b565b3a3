"""Secret scanning of what a commit adds: detect-secrets in-process plus shared rules.

The format rules live in ``shared.secrets_rules`` (the spawner's redaction uses the same
list); this module adds detect-secrets' plugins, the diff handling and the allowlist.

Only added lines are scanned (a secret already on the base branch is not the agent's).
Findings carry file, line and rule, never the value. Known false positives are listed
in ``.mosaic/secrets-allowlist``, read from the remote base branch, not from the
worktree, so an agent cannot allowlist its own secrets. detect-secrets' inline
``pragma: allowlist secret`` comments are ignored for the same reason.
"""

from __future__ import annotations

import fnmatch
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.core.scan import scan_diff as detect_secrets_scan_diff
from detect_secrets.settings import transient_settings
from unidiff.patch import PatchSet

from shared.secrets_rules import find, plausible

ALLOWLIST_PATH = ".mosaic/secrets-allowlist"

# Hex entropy flags every commit hash and checksum; public IPs are not secrets.
_SKIPPED_PLUGINS = {"HexHighEntropyString", "IPPublicDetector"}
# Agent-writable escape hatches (inline pragmas) and filters that look at the host disk.
_DISABLED_FILTERS = (
    "detect_secrets.filters.common.is_invalid_file",
    "detect_secrets.filters.allowlist.is_line_allowlisted",
)
_FILTERS = (
    "detect_secrets.filters.heuristic.is_sequential_string",
    "detect_secrets.filters.heuristic.is_potential_uuid",
    "detect_secrets.filters.heuristic.is_likely_id_string",
    "detect_secrets.filters.heuristic.is_templated_secret",
    "detect_secrets.filters.heuristic.is_prefixed_with_dollar_sign",
    "detect_secrets.filters.heuristic.is_indirect_reference",
    "detect_secrets.filters.heuristic.is_lock_file",
    "detect_secrets.filters.heuristic.is_not_alphanumeric_string",
    "detect_secrets.filters.heuristic.is_swagger_file",
)
# detect-secrets keeps its settings in process-global state: one scan at a time.
_SCAN_LOCK = threading.Lock()


@dataclass(frozen=True, order=True)
class Finding:
    """Where a secret was seen and by which rule (never the secret itself)."""

    path: str
    line: int
    rule: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} ({self.rule})"


def rule_id(secret_type: str) -> str:
    """``"AWS Access Key"`` -> ``"aws-access-key"``: the names the allowlist uses."""
    return re.sub(r"[^a-z0-9]+", "-", secret_type.lower()).strip("-")


def _detect_secrets_config() -> dict[str, object]:
    plugins: list[dict[str, object]] = []
    mapping: dict[str, type] = get_mapping_from_secret_type_to_class()
    for plugin_class in mapping.values():
        name: str = plugin_class.__name__
        if name == "Base64HighEntropyString":
            plugins.append({"name": name, "limit": 4.5})
        elif name not in _SKIPPED_PLUGINS:
            plugins.append({"name": name})
    return {"plugins_used": plugins, "filters_used": [{"path": path} for path in _FILTERS]}


@dataclass(frozen=True)
class AllowEntry:
    """One allowlist line: a path glob, optionally a line number and rule ids."""

    glob: str
    line: int | None
    rules: frozenset[str]

    def allows(self, finding: Finding) -> bool:
        if not fnmatch.fnmatchcase(finding.path, self.glob):
            return False
        if self.line is not None and self.line != finding.line:
            return False
        return not self.rules or finding.rule in self.rules


@dataclass(frozen=True)
class Allowlist:
    """The parsed ``.mosaic/secrets-allowlist`` (see docs/git.md for the format)."""

    entries: tuple[AllowEntry, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Allowlist:
        entries = []
        for raw in text.splitlines():
            line = re.sub(r"(^|\s)#.*$", "", raw).strip()
            if not line:
                continue
            target, *rules = line.split()
            match = re.fullmatch(r"(.+):(\d+)", target)
            glob, number = (match.group(1), int(match.group(2))) if match else (target, None)
            entries.append(AllowEntry(glob.lstrip("/"), number, frozenset(rules)))
        return cls(tuple(entries))

    def allows(self, finding: Finding) -> bool:
        return any(entry.allows(finding) for entry in self.entries)


def _added_lines(diff: str) -> Iterable[tuple[str, int, str]]:
    for patched in PatchSet.from_string(diff):
        for hunk in patched:
            for line in hunk:
                if line.is_added and line.target_line_no is not None:
                    yield patched.path, line.target_line_no, line.value


def scan_text(path: str, text: str) -> list[Finding]:
    """The shared rules over a text that is not a diff (a commit message)."""
    return sorted(
        {
            Finding(path, number, match.rule)
            for number, line in enumerate(text.replace("\x00", " ").splitlines(), start=1)
            for match in find(line)
        }
    )


def _plausible(rule: str, value: str | None, line: str | None) -> bool:
    """The shared look-alike test on a detect-secrets finding (placeholders, digests...)."""
    if value is None or line is None:
        return True
    at = line.replace("\x00", " ").find(value)
    return plausible(rule, value, line[: max(at, 0)], generic=False)


def scan_diff(diff: str, allowlist: Allowlist | None = None) -> list[Finding]:
    """Findings on the lines a unified diff adds, minus what the allowlist excuses."""
    if not diff.strip():
        return []
    found: set[Finding] = set()
    added: dict[tuple[str, int], str] = {}
    for path, number, text in _added_lines(diff):
        added[(path, number)] = text
        for match in find(text):
            found.add(Finding(path, number, match.rule))
    with _SCAN_LOCK, transient_settings(_detect_secrets_config()) as settings:
        settings.disable_filters(*_DISABLED_FILTERS)
        # A NUL byte must not hide the rest of a line from the plugins.
        for secret in detect_secrets_scan_diff(diff.replace("\x00", " ")):
            rule = rule_id(secret.type)
            if _plausible(
                rule, secret.secret_value, added.get((secret.filename, secret.line_number))
            ):
                found.add(Finding(secret.filename, secret.line_number, rule))
    allow = allowlist or Allowlist()
    return sorted(finding for finding in found if not allow.allows(finding))
