"""Model Depot's exceptions.

Errors from Redis, huggingface_hub, RQ and the file system are converted into these where they enter our
code, so callers (the UI, the CLI) handle one family. Every message says what to do next.

    ModelDepotError
    ├── ConfigError                 (bad settings / environment)
    ├── InvalidInputError(ValueError)
    │   └── InvalidModelNameError
    ├── NotFoundError(KeyError)     (no such model in the state)
    ├── ConflictError               (the model is in a status that forbids the action)
    ├── PermissionDeniedError       (role does not allow the action)
    │   ├── TooManySignInsError     (sign-in paused after repeated wrong passwords)
    │   └── TooManyTokenAttemptsError (API tokens from one address paused after repeated wrong ones)
    ├── StateUnavailableError       (Redis unreachable)
    ├── StateFileError
    │   └── StateFileCorruptError
    ├── SnapshotImportError(ValueError)
    └── DownloadError               (a job's failure; its message is the user-facing reason)
        ├── RepoNotFoundError
        ├── GatedRepoError
        ├── RevisionNotFoundError
        ├── NoMatchingFilesError
        ├── HubNetworkError
        ├── DiskFullError
        ├── IntegrityError
        └── JobCancelledError
            └── JobPausedError      (stopped on purpose, partial files kept)
"""

from __future__ import annotations


class ModelDepotError(Exception):
    """Base of every error Model Depot raises on purpose."""


class ConfigError(ModelDepotError):
    """The configuration cannot be used."""


class InvalidInputError(ModelDepotError, ValueError):
    """User input was rejected before anything changed."""


class InvalidModelNameError(InvalidInputError):
    """A model name is not ``org/name`` or ``org/name@revision``."""


class NotFoundError(ModelDepotError, KeyError):
    """The model is not in the list."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class ConflictError(ModelDepotError):
    """The model's current status does not allow this action."""


class PermissionDeniedError(ModelDepotError, PermissionError):
    """The signed-in user's role does not allow this action."""


class TooManySignInsError(PermissionDeniedError):
    """Sign-in for this user name is paused after too many wrong passwords."""


class TooManyTokenAttemptsError(PermissionDeniedError):
    """API tokens from this client address are refused for a while after too many wrong ones.

    ``retry_after_s`` is how long the pause still lasts (an HTTP answer's ``Retry-After``).
    """

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class StateUnavailableError(ModelDepotError, ConnectionError):
    """Redis, the source of truth, cannot be reached."""


class StateFileError(ModelDepotError):
    """The JSON snapshot cannot be read or written."""


class StateFileCorruptError(StateFileError):
    """The JSON snapshot is not a valid snapshot; it was moved aside."""


class SnapshotImportError(ModelDepotError, ValueError):
    """A snapshot file given to ``snapshot import`` is malformed."""


class DownloadError(ModelDepotError):
    """A download or removal job failed; ``str(error)`` is the reason shown to users."""


class RepoNotFoundError(DownloadError):
    """The repository does not exist on the Hub (or is private)."""


class GatedRepoError(DownloadError):
    """The repository needs a token or accepted terms."""


class RevisionNotFoundError(DownloadError):
    """The branch, tag or commit does not exist."""


class NoMatchingFilesError(DownloadError):
    """The include/exclude patterns select no file."""


class HubNetworkError(DownloadError):
    """The Hub could not be reached or kept failing after retries."""


class DiskFullError(DownloadError):
    """Not enough free space on the models volume."""


class NoRoomError(DiskFullError):
    """A download does not fit the models quota, the disk's high watermark or its free space."""


class IntegrityError(DownloadError):
    """A downloaded file does not match the Hub's checksum."""


class JobCancelledError(DownloadError):
    """The job was cancelled by a user."""


class JobPausedError(JobCancelledError):
    """The job was paused by a user: it stops like a cancel, but its partial files stay for a resume."""
