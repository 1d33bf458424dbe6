"""Errors a user can cause. Each message names the file, row, column or value and says what to do."""


class ReviewError(Exception):
    """Base class of every error shown to a user (pages show it with st.error)."""


class IngestError(ReviewError):
    """An upload that cannot be ingested; nothing was written."""


class PermissionDenied(ReviewError):
    """The signed-in user's role does not allow the action."""


class StaleViewError(ReviewError):
    """A decision was made on a view that someone else changed in the meantime."""


class NotFound(ReviewError):
    """A dataset, user, run or row that does not exist."""


class AuthError(ReviewError):
    """Wrong name or password, or a locked or inactive account."""


class StorageError(ReviewError):
    """The database file cannot be opened, read or written (a full disk, a read-only file or folder, a
    write lock held too long, a file that is not a database or is damaged): the message names the file
    and the fix. A write that fails so is rolled back whole: nothing was saved."""
