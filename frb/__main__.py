"""``python -m frb``: see :mod:`frb.cli`."""
import sys

from frb.cli import main

if __name__ == "__main__":
    sys.exit(main())
