"""Test helpers: real servers (specops, localstripe) as subprocesses, databases."""
