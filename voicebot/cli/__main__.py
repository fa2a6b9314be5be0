"""``python -m voicebot.cli.main``: the same entry point as the ``voicebot`` command."""

import sys

from voicebot.cli.main import main

sys.exit(main())
