"""The one error hierarchy of videoconverter.

Every class's docstring is its default message. Errors are split in two families that decide what a worker
does with a job: :class:`PermanentError` (bad input: dead-letter at once, with the reason) and
:class:`TransientError` (the world misbehaved: retry later). Anything else that escapes a job is treated as
transient, so an unforeseen bug retries and then dead-letters rather than looping or losing the job.
"""

from __future__ import annotations


class VideoConverterError(Exception):
    """videoconverter failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self.args[0])


class ConfigError(VideoConverterError):
    """The configuration is invalid: fix the named field in videoconverter.toml or the environment."""


class UnknownBackendError(ConfigError):
    """No backend is registered for that URL scheme."""


class InvalidQueryError(ConfigError):
    """The job query is invalid (a malformed cursor, a limit out of range, an unknown state or rendition).

    A usage error, reported as configuration errors are: exit status 2, HTTP 400."""


class InvalidKeyError(VideoConverterError):
    """The object key is not acceptable (empty, absolute, `..`, NUL or control characters)."""


class ObjectNotFoundError(VideoConverterError):
    """No object exists at that bucket and key."""


class BucketNotFoundError(VideoConverterError):
    """The bucket does not exist: run `videoconverter provision` first."""


class StaleReceiptError(VideoConverterError):
    """The message's lease has moved on (it expired and was delivered again): this worker no longer owns it."""


class QueueNotFoundError(VideoConverterError):
    """The queue or topic does not exist: run `videoconverter provision` first."""


class BrokerUnavailableError(VideoConverterError):
    """The message broker cannot be reached or refused the operation; try again later."""


# --- job failures -------------------------------------------------------------------------------------------


class PermanentError(VideoConverterError):
    """The input can never be converted; the job is dead-lettered without retrying."""


class InvalidEventError(PermanentError):
    """The message is not an S3 ObjectCreated event videoconverter understands."""


class SourceMissingError(PermanentError):
    """The uploaded object no longer exists (deleted after the upload event)."""


class NotAVideoError(PermanentError):
    """The upload is not a readable video file in an allowed container format."""


class NoVideoStreamError(PermanentError):
    """The upload has no video stream (audio-only or empty container)."""


class LimitExceededError(PermanentError):
    """The upload exceeds a configured limit (pixels, duration or stream count)."""


class TruncatedSourceError(PermanentError):
    """The upload is truncated: its data stops before the end its header promises (an interrupted transfer)."""


class TransientError(VideoConverterError):
    """A temporary failure; the job will be retried."""


class TranscodeError(TransientError):
    """FFmpeg failed."""

    def __init__(self, message: str, *, exit_code: int | None = None, stderr_tail: str = "") -> None:
        detail = f"{message} (exit code {exit_code})" if exit_code is not None else message
        if stderr_tail:
            last_line = stderr_tail.strip().splitlines()[-1] if stderr_tail.strip() else ""
            detail = f"{detail}: {last_line}" if last_line else detail
        super().__init__(detail)
        self.exit_code = exit_code
        self.stderr_tail = stderr_tail


class TranscodeTimeoutError(TranscodeError):
    """FFmpeg ran past the wall-clock limit and was killed."""


class ShutdownRequested(VideoConverterError):
    """The worker is stopping; the current job was handed back to its queue."""


class LeaseLost(VideoConverterError):
    """The message's lease went to another worker meanwhile: this one abandons it and writes nothing."""
