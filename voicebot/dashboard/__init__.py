"""The ops dashboard served by ``voicebot serve``: a Starlette sub-app, its data and static
files."""
