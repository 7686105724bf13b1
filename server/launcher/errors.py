"""User-facing errors: one line that says what is wrong and what to do."""


class LauncherError(Exception):
    """Bad input or an impossible request; the CLI prints it and exits 2, never a traceback."""


class RuleTableError(LauncherError, ValueError):
    """A table (data/compatibility.yaml, data/deployment_rules.yaml or a LAUNCHER_CONFIG_DIR copy) is malformed:
    raised at load, with the rule id and the bad name, so a bad table never half-works."""
