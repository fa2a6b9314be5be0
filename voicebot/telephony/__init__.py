"""The Twilio shell: webhooks, the Media Streams WebSocket, TwiML, REST calls, signatures,
metrics."""
