"""``python -m services.gitops``: run the gitops service until SIGTERM."""

from services.gitops.app import create_app
from shared.service import run

run("gitops", create_app)
