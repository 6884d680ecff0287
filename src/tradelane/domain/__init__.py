"""Pure domain models and rules: no I/O; time is passed in as ``now``."""
