"""Discord-facing cogs: thin layers that parse, call the service and render."""
