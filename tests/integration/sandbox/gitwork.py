"""The git an agent runs in its sandbox, as one POSIX shell script (issue 17, item 1).

Runs in the agent's repository (``shared.agentrepo``) at ``/workspace`` of any backend:
status, diff, log, add, commit, a rebase that conflicts, is resolved and continued, a
merge, a cherry-pick and a stash; each step checks its result (``set -e``) and the
script ends by printing ``GIT-WORKS``. Its commits borrow the cache's objects through
alternates, which the sandbox shows read-only.
"""

from __future__ import annotations

GIT_WORKOUT = r"""
set -eu
branch=$(git symbolic-ref --short HEAD)
git status --short
git log --oneline -1 origin/main >/dev/null
echo "agent line" >> app.py
git diff --stat | grep -q app.py
git add app.py
git commit -qm "agent change"
git log --format=%s -1 | grep -q "agent change"
# a base that moved on the same line
git checkout -qb upstream origin/main
echo "upstream line" >> app.py
git commit -qam "upstream change"
git checkout -q "$branch"
if git rebase -q upstream >/dev/null 2>&1; then echo "no conflict?"; exit 1; fi
test "$(git diff --name-only --diff-filter=U)" = app.py
git show upstream:app.py > app.py
echo "agent line" >> app.py
git add app.py
GIT_EDITOR=true git rebase --continue >/dev/null
git merge-base --is-ancestor upstream HEAD
test "$(git symbolic-ref --short HEAD)" = "$branch"
# a merge
git checkout -qb side upstream
echo "side" > side.txt
git add side.txt
git commit -qm "side file"
git checkout -q "$branch"
git merge -q --no-edit side
test -f side.txt
# a cherry-pick
git checkout -qb pick origin/main
echo "picked" > picked.txt
git add picked.txt
git commit -qm "picked file"
picked=$(git rev-parse HEAD)
git checkout -q "$branch"
git cherry-pick "$picked" >/dev/null
test -f picked.txt
# a stash
echo "work in progress" >> README.md
git stash -q
test -z "$(git status --porcelain --untracked-files=no)"
git stash pop -q
test -n "$(git status --porcelain --untracked-files=no)"
git checkout -q -- README.md
git log --format='%an <%ae>' -1
echo GIT-WORKS
"""
