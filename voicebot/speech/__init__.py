"""The speech path: audio formats, the Vosk recogniser, grammars, model downloads, prompt audio, and
the per-call pipeline that joins the recogniser to the dialogue.
"""
