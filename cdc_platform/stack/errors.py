"""The one exception the stack raises: its message is a complete sentence meant for the user."""


class StackError(RuntimeError):
    """A stack operation failed for a reason the user can act on; the CLI prints it without a traceback."""
