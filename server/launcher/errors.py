"""User-facing errors: one line that says what is wrong and what to do."""


class LauncherError(Exception):
    """Bad input or an impossible request; the CLI prints it and exits 2, never a traceback."""
