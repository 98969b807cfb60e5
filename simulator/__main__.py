"""Run the simulator: `python -m simulator --port 8080 --volumes 2000`."""

import sys

from simulator.cli import main

sys.exit(main())
