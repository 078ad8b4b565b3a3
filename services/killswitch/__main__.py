"""``python -m services.killswitch``."""

from services.killswitch.app import create_app
from shared.service import run

if __name__ == "__main__":
    run("killswitch", create_app)
