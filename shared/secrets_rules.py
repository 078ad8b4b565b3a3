"""The one rule set for secrets: what the push-time scanner blocks and what redaction masks.

gitops runs these rules (next to detect-secrets' plugins) over what a commit adds; the
spawner masks the same matches in event summaries and the finish summary. Keeping both
on one list means a format we learn to block is also one we stop showing.

The provider patterns are written from the documented token formats (the shapes that
published gitleaks-style rule sets describe: fixed prefixes, lengths, alphabets). The
generic rules (password/secret assignments, connection strings, a stand-alone AWS
secret key) look at the value and skip look-alikes: placeholders (``changeme``,
``<your-key>``, ``${VAR}``), environment indirections, documented example keys such as
``AKIAIOSFODNN7EXAMPLE``, and hashes, which are not credentials.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    """One format: ``pattern``'s group ``v`` (or the whole match) is the secret value."""

    id: str
    pattern: re.Pattern[str]
    generic: bool = False  # the value is checked against the look-alike filters


@dataclass(frozen=True)
class Match:
    """A secret found in a text: which rule, and where the value is (never kept)."""

    rule: str
    start: int
    end: int


def _rule(rule_id: str, pattern: str, *, generic: bool = False) -> Rule:
    # Rules run over a whole text at once (fast); a bare \s must not reach the next line.
    # Negated classes such as [^\s"'] already stop at a newline.
    one_line = re.sub(r"(?<!\[\^)\\s", r"[ \\t]", pattern)
    return Rule(rule_id, re.compile(one_line, re.MULTILINE), generic)


# A token boundary: not preceded or followed by characters that would extend it.
_B = r"(?<![A-Za-z0-9_])"
_E = r"(?![A-Za-z0-9_])"

_KEYWORD = (
    r"(?:pass(?:word|wd|phrase)?|pwd|secret|token|api[_.-]?key|apikey|access[_.-]?key"
    r"|auth[_.-]?(?:key|token)|private[_.-]?key|client[_.-]?secret|credentials?)"
)

RULES: tuple[Rule, ...] = (
    # Private keys (PEM, OpenSSH, PGP, PuTTY). Public keys and certificates do not match.
    _rule(
        "private-key",
        r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----"
        r"(?:[^-]*-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----)?|PuTTY-User-Key-File-\d+:",
    ),
    # Cloud.
    _rule("aws-access-key-id", _B + r"(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}" + _E),
    _rule(
        "aws-secret-access-key",
        r"(?i:aws[\w.-]{0,30}?(?:secret|key)[\w.-]{0,20}?)[\"']?\s*(?:=|:|:=|=>)\s*[\"']?"
        r"(?P<v>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])",
    ),
    # The secret half alone: 40 base64 characters with upper, lower and digits (a hex
    # commit hash has no upper case; checked for entropy below).
    _rule(
        "aws-secret-access-key",
        r"(?<![A-Za-z0-9/+=_.-])(?P<v>(?=[A-Za-z0-9/+]*[A-Z])(?=[A-Za-z0-9/+]*[a-z])"
        r"(?=[A-Za-z0-9/+]*[0-9])[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=_.-])",
        generic=True,
    ),
    _rule("google-api-key", _B + r"AIza[0-9A-Za-z_-]{35}" + r"(?![A-Za-z0-9_-])"),
    _rule("google-oauth-client-secret", _B + r"GOCSPX-[A-Za-z0-9_-]{28}"),
    _rule("google-oauth-token", _B + r"ya29\.[0-9A-Za-z_-]{30,}"),
    _rule(
        "azure-storage-key",
        r"(?i:AccountKey|SharedAccessKey)\s*=\s*(?P<v>[A-Za-z0-9+/]{40,}={0,2})",
    ),
    _rule("azure-ad-client-secret", _B + r"[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.-]{31,34}" + _E),
    _rule("digitalocean-token", _B + r"do[por]_v1_[a-f0-9]{64}" + _E),
    _rule("alibaba-access-key-id", _B + r"LTAI[A-Za-z0-9]{20}" + _E),
    # Version control and package registries.
    _rule("github-token", _B + r"gh[pousr]_[A-Za-z0-9]{36,255}" + _E),
    _rule("github-fine-grained-pat", _B + r"github_pat_[A-Za-z0-9_]{50,255}" + _E),
    _rule("gitlab-token", _B + r"gl(?:pat|ptt|dt|rt|cbt|oas|ft|imt|agent)-[A-Za-z0-9_-]{20,}"),
    _rule("bitbucket-app-password", _B + r"ATBB[A-Za-z0-9_=.-]{28,}" + _E),
    _rule("npm-token", _B + r"npm_[A-Za-z0-9]{36}" + _E),
    _rule("pypi-token", _B + r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}"),
    _rule("rubygems-token", _B + r"rubygems_[a-f0-9]{48}" + _E),
    _rule("docker-hub-token", _B + r"dckr_pat_[A-Za-z0-9_-]{27,}"),
    # Chat.
    _rule("slack-token", _B + r"xox[abposr]-(?:\d+-)+[A-Za-z0-9-]{10,}"),
    _rule("slack-app-token", _B + r"xapp-\d-[A-Z0-9]+-\d+-[a-z0-9]{32,}"),
    _rule(
        "slack-webhook", r"hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_-]{20,}"
    ),
    _rule(
        "discord-bot-token",
        _B + r"[MNO][A-Za-z0-9_-]{23,25}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,38}" + _E,
    ),
    _rule("discord-webhook", r"discord(?:app)?\.com/api/webhooks/\d+/[A-Za-z0-9_-]{60,}"),
    _rule("telegram-bot-token", r"(?<![0-9])\d{8,10}:AA[A-Za-z0-9_-]{33}" + r"(?![A-Za-z0-9_-])"),
    _rule("teams-webhook", r"\.webhook\.office\.com/webhookb2/[A-Za-z0-9@/-]{40,}"),
    # Payments.
    _rule("stripe-key", _B + r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{20,}" + _E),
    _rule("stripe-webhook-secret", _B + r"whsec_[A-Za-z0-9]{24,}" + _E),
    _rule("square-token", _B + r"(?:sq0atp|sq0csp|EAAA)[A-Za-z0-9_-]{22,}"),
    _rule("paypal-braintree-token", r"access_token\$production\$[0-9a-z]{16}\$[0-9a-f]{32}"),
    _rule("shopify-token", _B + r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}" + _E),
    # Mail and messaging APIs.
    _rule("sendgrid-key", _B + r"SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}" + _E),
    _rule("mailgun-key", _B + r"key-[0-9a-f]{32}" + _E),
    _rule("mailchimp-key", _B + r"[0-9a-f]{32}-us\d{1,2}" + _E),
    _rule("twilio-api-key", _B + r"SK[0-9a-f]{32}" + _E),
    # AI providers.
    _rule("anthropic-api-key", r"sk-ant-[A-Za-z0-9_-]{20,}"),
    _rule("openai-api-key", _B + r"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,}"),
    _rule("openai-api-key", _B + r"sk-[A-Za-z0-9_-]{20,}T3BlbkFJ[A-Za-z0-9_-]{20,}"),
    _rule("sk-api-key", r"(?<![A-Za-z0-9])sk-[a-zA-Z0-9]{48}(?![A-Za-z0-9])"),
    _rule("huggingface-token", _B + r"hf_[A-Za-z]{34}" + _E),
    _rule("groq-api-key", _B + r"gsk_[A-Za-z0-9]{52}" + _E),
    _rule("replicate-token", _B + r"r8_[A-Za-z0-9]{37}" + _E),
    _rule("perplexity-api-key", _B + r"pplx-[A-Za-z0-9]{48}" + _E),
    # Tokens in general.
    _rule(
        "json-web-token",
        _B + r"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}",
    ),
    _rule(
        "authorization-header",
        r"(?i:\b(?:authorization|proxy-authorization)\s*[:=]\s*[\"']?(?:bearer|token|basic)\s+)"
        r"(?P<v>[A-Za-z0-9._~+/=-]{8,})",
        generic=True,
    ),
    _rule("bearer-token", r"(?i:\bbearer\s+)(?P<v>[A-Za-z0-9._~+/-]{20,}=*)", generic=True),
    # A URL with a password: scheme://user:password@host (databases, brokers, git).
    _rule(
        "url-password",
        r"\b[a-zA-Z][a-zA-Z0-9+.-]{1,20}://[^\s:/@\"'<>]*:(?P<v>[^\s@/\"'<>]{3,})@[^\s\"'<>]+",
        generic=True,
    ),
    # key = value assignments in code and config (.env, shell, YAML, INI, TOML, JSON,
    # Dockerfile ENV/ARG, CLI flags).
    _rule(
        "secret-assignment",
        r"(?<![A-Za-z0-9_.-])(?i:[A-Za-z0-9_.-]{0,40}" + _KEYWORD + r"[A-Za-z0-9_.-]{0,40})"
        r"(?![A-Za-z0-9_.-])[\"']?"
        r"(?:\s*(?:=|:=|=>|:)\s*|\s+(?=[\"']))"
        r"(?P<q>[\"'`]?)(?P<v>[^\s\"'`;,]{4,})(?P=q)",
        generic=True,
    ),
    _rule(
        "secret-assignment",
        r"^\s*(?:ENV|ARG)\s+(?i:[A-Za-z0-9_]{0,40}" + _KEYWORD + r"[A-Za-z0-9_]{0,40})"
        r"\s+(?P<v>[^\s\"'`;,=]{4,})\s*$",
        generic=True,
    ),
    _rule(
        "secret-flag",
        r"(?i:\s--?(?:password|passwd|token|api-key|secret)[= ])[\"']?(?P<v>[^\s\"'`;,]{4,})",
        generic=True,
    ),
)

# Values that stand for a secret rather than being one.
_PLACEHOLDER_WORDS = re.compile(
    r"(?i)example|changeme|change[_-]me|placeholder|dummy|redacted|your[_-]|my[_-]?(?:pass|secret|token|key)"
    r"|xxxx|\*\*\*|\.\.\.|<[^>]*>|^(?:none|null|nil|true|false|empty|secret|password|passwd"
    r"|token|required|optional|string|bool|int|str|bytes|test|testing|default|undefined"
    r"|hidden|masked|todo|tbd|fixme|notset|unset|admin|root|guest|user|username|bearer|basic)$"
)
# Indirections: the value names where the secret comes from.
_INDIRECTION = re.compile(
    r"^(?:\$|%|@|&|\{|\(|\[|!|#|\\)|\{\{|\$\{|\$\(|%\(|\benv\b|environ|getenv|process\.env"
    r"|os\.|secrets?\.|config\.|settings\.|vault:|ref\+|arn:aws|file:|/run/secrets|^/|^\./"
    r"|[()\[\]]|^[A-Z][A-Z0-9_]+$|^[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)+$"
)
# Keys whose value is a digest or an identifier, not a credential.
_HASH_KEY = re.compile(r"(?i)hash|digest|checksum|sha\d*|md5|integrity|fingerprint|_id\b|_url\b")
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_WORDS = re.compile(r"[A-Za-z]+(?:[-_][A-Za-z]+)*")


def entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


# A digest written with its algorithm (SRI, lockfiles, go.sum, pip --hash).
_DIGEST_PREFIX = re.compile(r"(?i)(?:sha(?:1|224|256|384|512)|md5|h1)[-:=]\s*[\"']?$")
_DIGEST_VALUE = re.compile(r"(?i)(?:sha(?:1|224|256|384|512)|md5|h1)[-:]")
_GENERIC_DETECTORS = frozenset(
    {"secret-keyword", "base64-high-entropy-string", "basic-auth-credentials"}
)


def plausible(rule_id: str, value: str, before: str, *, generic: bool) -> bool:
    """Whether ``value`` (found by ``rule_id`` after the text ``before``) is a real secret.

    Documented example keys are never secrets; for the generic rules, placeholders,
    indirections, digests and values equal to their own key name are not either.
    gitops applies the same test to detect-secrets' generic detectors' findings.
    """
    if "EXAMPLE" in value.upper():
        return False
    if not (generic or rule_id in _GENERIC_DETECTORS):
        return True
    if _PLACEHOLDER_WORDS.search(value) or _INDIRECTION.search(value):
        return False
    if _DIGEST_PREFIX.search(before) or _DIGEST_VALUE.match(value):
        return False
    if rule_id == "aws-secret-access-key":
        return entropy(value) >= 4.2 and not _HASH_KEY.search(before)
    if rule_id in ("secret-assignment", "secret-flag", "secret-keyword"):
        if _HASH_KEY.search(before) or (_HEX.match(value) and len(value) in (32, 40, 64, 128)):
            return False
        if value.isdigit() or len(set(value)) < 4:
            return False
        # Unquoted words are prose ("password: handle unicode"), not credentials.
        if _WORDS.fullmatch(value) and not before.endswith(("'", '"', "`")):
            return False
        return value.lower() not in before.lower()
    return True


def find(text: str) -> Iterator[Match]:
    """Every secret the rules see in ``text`` (a NUL byte ends a line, it hides nothing).

    Each rule runs once over the whole text; no rule matches across a line break, so
    this is the same as running them line by line, without a Python loop per line.
    """
    text = text.replace("\x00", "\n")
    for rule in RULES:
        group = "v" if "v" in rule.pattern.groupindex else 0
        for match in rule.pattern.finditer(text):
            start = match.start(group)
            before = text[text.rfind("\n", 0, start) + 1 : start]
            if plausible(rule.id, match.group(group), before, generic=rule.generic):
                yield Match(rule.id, start, match.end(group))


_PEM_BLOCK = re.compile(
    r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----.*?"
    r"(?:-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----|\Z)",
    re.DOTALL,
)


def redact(text: str, mask: str = "***") -> str:
    """``text`` with every value the rules see replaced by ``mask``.

    A private key is masked whole, body included, even across lines (or cut short).
    """
    spans = sorted(
        [(m.start, m.end) for m in find(text)] + [m.span() for m in _PEM_BLOCK.finditer(text)]
    )
    out: list[str] = []
    position = 0
    for start, end in spans:
        if end <= position:
            continue
        out.append(text[position : max(start, position)])
        out.append(mask)
        position = end
    out.append(text[position:])
    return "".join(out)
