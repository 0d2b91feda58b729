"""pycontain: a small Linux container runtime that shows, for real, what Docker does."""
