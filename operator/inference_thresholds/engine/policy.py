"""Policy: the efficiency factors and floors, kept out of code (placeholder; see engine)."""
