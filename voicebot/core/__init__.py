"""The pure core: configuration model, match result, text and phone-number rules, and the call
dialogue.

Nothing here does I/O; every shell (server, replay, microphone, chat) drives these same objects.
"""
