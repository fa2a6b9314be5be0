"""Loading what ops edit: YAML intents into the frozen core config, with file:line errors, lint and
import."""
