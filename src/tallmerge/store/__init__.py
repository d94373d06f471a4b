"""The compressed multi-task store."""
