"""Twilio's side, for tests and offline trials: a local fake of the REST API and a simulator
that places calls with Twilio's exact webhook and Media Streams protocol.
"""
