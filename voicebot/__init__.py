"""voicebot: an offline first-line voice robot for support lines."""

__version__ = "0.1.0"
