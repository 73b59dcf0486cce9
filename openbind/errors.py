"""The exception types openbind raises for bad input, so callers can catch exactly them."""

from __future__ import annotations


class OpenBindInputError(ValueError):
    """Bad user input (a file, array, string or argument); the message names the item and the reason."""

    def __init__(self, item: object, reason: str):
        self.item = item
        self.reason = reason
        super().__init__(f"{_describe(item)}: {reason}")

    def __reduce__(self):  # survive pickling between DataLoader worker processes
        return type(self), (self.item, self.reason)


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the model (missing, unexpected or mis-shaped keys,
    truncated or corrupt files, pickles that would run code)."""


def _describe(item: object) -> str:
    if isinstance(item, (str, bytes)) and len(item) > 200:
        item = item[:200] + (b"..." if isinstance(item, bytes) else "...")
    if isinstance(item, bytes):
        return f"<{len(item)} bytes>"
    return repr(item) if not hasattr(item, "shape") else f"<{type(item).__name__} shape={tuple(item.shape)}>"
