"""``python -m services.gates``."""

from services.gates.app import create_app
from shared.service import run

if __name__ == "__main__":
    run("gates", create_app)
