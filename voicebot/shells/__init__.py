"""Front ends that drive the same pipeline and dialogue as a phone call: text chat, WAV replay,
microphone."""
