"""``python -m engine.cli``: the engine's commands (the ``seamless`` console script,
``panel_app.cli``, adds ``serve``)."""

import sys

from engine.cli import main

sys.exit(main())
