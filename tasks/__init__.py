"""The applications of lstm-suite. The task table lives in ``tasks/registry.py``."""
