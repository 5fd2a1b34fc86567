class InputError(ValueError):
    """Bad input from the user (a file, a flag, a config value): reported in one line, no traceback."""
