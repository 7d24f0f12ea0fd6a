"""torchrun entry for the distributed tests: registers the stand-in model, then the CLI."""
import sys

import stand_in  # noqa: F401  (registers test-disk)
from sambench.cli import main

sys.exit(main())
