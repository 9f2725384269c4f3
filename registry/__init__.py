"""Contract types, the registry and the one invocation pipeline."""
