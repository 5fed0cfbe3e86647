"""The one exception type for a user's mistake: the CLI prints its message on one line and
exits 1. The message says what is wrong and how to fix it."""


class UserError(Exception):
    """A problem the user can fix (bad input, missing file); never a bug."""
