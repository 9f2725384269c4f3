"""Domain errors the key contracts declare."""

from registry.errors import ErrorSpec

KEY_NOT_FOUND = ErrorSpec("KEY_NOT_FOUND", 404, "API key not found")
