"""Runner-side helpers (checkpoint loading and the like)."""
