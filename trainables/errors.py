"""The error every trainable raises for a bad config, so that a spec fails in one line naming the key."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config key is unknown or has a bad value; the message names the key and what was expected.

    Its ``args`` are ``(key, expected)``, the arguments ``__init__`` takes, so that every way of rebuilding
    it (pickle between a Ray worker and the driver, ``copy.copy`` as Ray Tune applies to a trial's error,
    ``type(err)(*err.args)``) calls ``__init__`` as declared. Built with the message as its one argument, a
    rebuild that did not go through a custom ``__reduce__`` failed with ``ConfigError.__init__() missing 1
    required positional argument`` in place of the trial's real error. The message is ``__str__``'s.
    """

    def __init__(self, key: str, expected: str) -> None:
        super().__init__(key, expected)
        self.key = key
        self.expected = expected

    def __str__(self) -> str:
        return f"{self.key}: {self.expected}"
