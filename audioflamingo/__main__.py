import sys

from audioflamingo.cli import main

sys.exit(main())
