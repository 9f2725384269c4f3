"""One module per transport, plus the ASGI app that mounts them."""
