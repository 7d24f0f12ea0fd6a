"""`sambench` with the test stand-in model registered (test-disk), for subprocess runs."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import stand_in  # noqa: E402,F401

from sambench.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
