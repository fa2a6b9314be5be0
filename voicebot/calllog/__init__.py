"""The call log: SQLite or PostgreSQL storage of every call's events and outcome, and reports over
it."""
