"""One exception hierarchy for nowm.

Every error nowm raises on purpose derives from :class:`NowmError`, and also from
the matching built-in exception, so callers can catch either (as python-soundfile
does).
"""

__all__ = [
    "NowmError",
    "ParameterError",
    "AudioIOError",
    "AudioFormatError",
    "TooShortError",
    "KeyFileError",
    "OutputExistsError",
]


class NowmError(Exception):
    """Base class of every error raised by nowm."""


class ParameterError(NowmError, ValueError):
    """A bad argument: the message names the value and what is allowed."""


class AudioIOError(NowmError, OSError):
    """A file could not be read or written (missing, directory, permission, disk)."""


class AudioFormatError(NowmError, ValueError):
    """A file was read but is not usable audio (not audio, corrupt, truncated, empty)."""


class TooShortError(NowmError, ValueError):
    """The audio is too short to carry or reveal a mark."""


class KeyFileError(NowmError, ValueError):
    """A key file is missing, unreadable or malformed."""


class OutputExistsError(NowmError, FileExistsError):
    """The output file exists and overwriting was not requested."""
