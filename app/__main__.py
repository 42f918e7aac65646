"""`python -m app` and the frozen build's entry point."""

import multiprocessing
import sys

from app.cli import main
from core import compute_pack

if __name__ == "__main__":
    multiprocessing.freeze_support()
    compute_pack.activate()
    sys.exit(main())
