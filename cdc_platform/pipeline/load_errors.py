"""The full load's own error, shared by every copy path and reader."""


class FullLoadError(RuntimeError):
    """A copy that would have changed values (target warnings) or could not complete."""
