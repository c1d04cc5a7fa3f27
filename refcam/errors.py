"""The root of every refcam error hierarchy.

Each package keeps its own ``errors.py`` whose base class derives from
:class:`RefcamError`, so the command line can turn any expected failure into
one clear line and a non-zero exit, while a bug still shows its traceback.
"""


class RefcamError(Exception):
    """An expected failure a person can act on (bad input, failed check)."""

    exit_code: int = 1
