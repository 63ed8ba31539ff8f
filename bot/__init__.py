"""videobot: a self-hosted Discord bot that turns a slash command into a short AI-generated video."""

__version__ = "0.1.0"
