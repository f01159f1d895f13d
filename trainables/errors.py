"""The error every trainable raises for a bad config, so that a spec fails in one line naming the key."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config key is unknown or has a bad value; the message names the key and what was expected."""

    def __init__(self, key: str, expected: str) -> None:
        super().__init__(f"{key}: {expected}")
        self.key = key
        self.expected = expected

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        """Raised on a Ray worker, it is pickled back to the driver with its key and expectation."""
        return type(self), (self.key, self.expected)
