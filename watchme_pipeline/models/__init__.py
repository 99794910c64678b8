"""Model code: loading by id or path, tiny random-weight builds, and the three stages."""
