"""``python -m bench``: the suite's command line (:func:`bench.dispatch`)."""

import sys

from bench import dispatch

sys.exit(dispatch())
