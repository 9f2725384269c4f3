"""Application wiring: settings, logging, the operation table of contents, the app and CLI."""
