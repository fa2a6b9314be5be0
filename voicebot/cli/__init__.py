"""The ``voicebot`` command line: one module per group of sub-commands, all thin shells over the
core."""
