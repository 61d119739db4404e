"""fireplot."""
