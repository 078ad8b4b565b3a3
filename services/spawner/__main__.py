"""``python -m services.spawner``."""

from services.spawner.app import create_app
from shared.service import run

if __name__ == "__main__":
    run("spawner", create_app)
