"""The open-file limit: every client connection, subscription and SQLite file is a
descriptor, so a process takes all the kernel allows it (children inherit it)."""

from __future__ import annotations

import resource

FILE_LIMIT_CEILING = 1 << 20  # taken as the limit when the hard one is "unlimited"


def raise_file_limit() -> int:
    """Raise the soft open-file limit to the hard one; the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = FILE_LIMIT_CEILING if hard == resource.RLIM_INFINITY else hard
    if soft == resource.RLIM_INFINITY:
        return FILE_LIMIT_CEILING
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft
        return target
    return soft
