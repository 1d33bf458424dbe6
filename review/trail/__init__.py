"""The audit trail: every change, append-only, in the table ``audit_log``.

- :mod:`review.trail.write`: :func:`log` appends a row hash-chained to the one before and sealed
  (:func:`log_many`: several at once, a bulk action's rows);
  :func:`new_key` starts a new keyed chain on purpose.
- :mod:`review.trail.key`: the key kept outside the database file, each row's seal (``audit_mac``), the
  anchor (the newest row, sealed) and the pin per database path.
- :mod:`review.trail.verify`: :func:`verify_trail`: the chain, the seals, the anchor and the pin.
- :mod:`review.trail.read`: the Audit trail page's reads (filters, one page, newest first).
- :mod:`review.trail.export`: the trail as CSV.

``log``, ``log_many``, ``verify_trail``, ``new_key`` and ``GENESIS`` are here as well, for ``trail.log(db, ...)``.
"""

from review.trail.verify import verify_trail
from review.trail.write import GENESIS, log, log_many, new_key

__all__ = ["GENESIS", "log", "log_many", "new_key", "verify_trail"]
