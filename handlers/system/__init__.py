"""System handlers."""
