import sys

from fireplot.cli import main

sys.exit(main())
