"""One exception type for mistakes a user can make; train.py prints it as a single line."""


class UserError(ValueError):
    """A bad path, column, label, model name or option, described in one line."""
