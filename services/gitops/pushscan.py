"""The secret scan of a push: every commit in ``base..head``, content and message.

The scan at commit time sees only what gitops commits; an agent may also commit in its
sandbox, rewrite its branch, or commit through another path. So before any push every
commit the push would add to the remote is scanned again, with the full rule set of
``secrets.scan_diff``: the lines each commit adds (against each parent of a merge: a
line counts if it is new against all of them) and its message. Findings name the
commit, the file and the line, never the secret.
"""

from __future__ import annotations

from services.gitops.errors import SecretFoundError
from services.gitops.safety import GitRunner
from services.gitops.secrets import Allowlist, Finding, scan_diff

MESSAGE_PATH = "COMMIT_MESSAGE"
MAX_SHOWN = 20

_COMMIT_DIFF = (
    "diff-tree", "-p", "--root", "--text", "--no-color", "--no-ext-diff", "--no-textconv",
    "--no-renames", "--unified=0", "--src-prefix=a/", "--dst-prefix=b/",
    "--ignore-submodules=dirty",
)  # fmt: skip


def commits_to_push(runner: GitRunner, base: str, head: str) -> list[str]:
    """The commits ``head`` has that ``base`` has not, oldest first."""
    out = runner.out("rev-list", "--reverse", f"{base}..{head}")
    return [line for line in out.splitlines() if line]


def scan_commit(runner: GitRunner, sha: str, allowlist: Allowlist) -> list[Finding]:
    """Findings in what ``sha`` adds and in its message."""
    parents = runner.out("rev-list", "--parents", "-n", "1", sha).split()[1:]
    if len(parents) <= 1:
        found = set(scan_diff(runner.out(*_COMMIT_DIFF, sha), allowlist))
    else:
        per_parent = [set(scan_diff(runner.out(*_COMMIT_DIFF, p, sha), allowlist)) for p in parents]
        found = set.intersection(*per_parent)
    message = runner.out("cat-file", "commit", sha).partition("\n\n")[2]
    found |= set(scan_diff(_as_diff(message), allowlist))
    return sorted(found)


def _as_diff(text: str) -> str:
    """``text`` as a diff that adds it as a new file, so ``scan_diff`` reads every line."""
    lines = text.splitlines() or [""]
    body = "".join(f"+{line}\n" for line in lines)
    return (
        f"diff --git a/{MESSAGE_PATH} b/{MESSAGE_PATH}\nnew file mode 100644\n"
        f"--- /dev/null\n+++ b/{MESSAGE_PATH}\n@@ -0,0 +1,{len(lines)} @@\n{body}"
    )


def scan_push(
    runner: GitRunner, base: str, head: str, allowlist: Allowlist, seen: set[str] | None = None
) -> None:
    """Raise ``SecretFoundError`` if any commit in ``base..head`` adds a secret.

    ``seen`` (commits already scanned clean in this push) is updated, so a retried push
    scans only commits it has not seen.
    """
    seen = set() if seen is None else seen
    hits: list[tuple[str, Finding]] = []
    for sha in commits_to_push(runner, base, head):
        if sha in seen:
            continue
        found = scan_commit(runner, sha, allowlist)
        if not found:
            seen.add(sha)
        hits += [(sha, finding) for finding in found]
    if not hits:
        return
    shown = ", ".join(
        f"commit {sha[:12]} {'message' if f.path == MESSAGE_PATH else f.path}:{f.line} ({f.rule})"
        for sha, f in hits[:MAX_SHOWN]
    )
    more = f" and {len(hits) - MAX_SHOWN} more" if len(hits) > MAX_SHOWN else ""
    raise SecretFoundError(
        f"push blocked: possible secrets in {shown}{more}. Rewrite those commits without "
        "them (the push is never forced: the branch must not contain them at all)",
        tuple((f"{sha[:12]}:{f.path}", f.line, f.rule) for sha, f in hits),
    )
