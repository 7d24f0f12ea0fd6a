import sys

from sambench.cli import main

sys.exit(main())
