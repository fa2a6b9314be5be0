"""The ``voicebot`` command line: one module per command (``check``, ``chat``, ``eval``, ...),
``common`` for what they share, ``main`` for the parser and the one place errors are printed."""
