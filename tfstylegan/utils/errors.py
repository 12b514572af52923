"""Errors a user can fix.

`UserError` carries a message that names the offending file or value and says what
to do; launchers print it without a traceback and exit non-zero
(stylegan2-ada-pytorch's `UserError`, keras-hub's "Received: x=..." convention).
"""


class UserError(ValueError):
    """Bad input from the user: a clear message, no traceback, exit status 1."""
