"""User-facing errors: one line that names the problem and the fix.

Anything raised as :class:`UserError` (or a subclass) is shown by the CLI as a
single red line without a traceback, and the process exits non-zero.
"""


class UserError(Exception):
    """A problem the user can fix (bad name, bad file, bad config)."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        self.message = message
        self.hint = hint
        super().__init__(message if not hint else f"{message} ({hint})")

    def one_line(self) -> str:
        text = self.message if not self.hint else f"{self.message} — {self.hint}"
        return " ".join(text.split())


class ConfigError(UserError):
    """An experiment YAML file (or a CLI override) does not validate."""


class UnknownNameError(UserError):
    """A backbone/objective/task/dataset name is not registered."""


class PluginError(UserError):
    """A plugin broke its side of the contract (wrong type, NaN loss, ...)."""


class DataError(UserError):
    """A dataset file is missing, malformed or inconsistent."""
