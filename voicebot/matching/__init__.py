"""Matching a transcript to an intent, and measuring how well a configuration routes."""
