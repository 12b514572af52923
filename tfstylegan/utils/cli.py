"""Launcher plumbing: absl `app.run` with user errors shown as one clean message.

Launchers are thin: flags -> config -> one library call. `run(main)` turns a
`UserError` (or a `FileExistsError`/`FileNotFoundError` about user paths) into
`error: <message>` on stderr and exit status 1, never a deep traceback.
"""

from __future__ import annotations

import sys
from typing import Callable

from absl import app, flags, logging

from tfstylegan.utils.errors import UserError


def _wrap(main: Callable[[list[str]], object]) -> Callable[[list[str]], object]:
    def wrapped(argv):
        if not flags.FLAGS["verbosity"].present:
            # TensorFlow logs SavedModel/checkpoint internals at INFO through absl; keep the console to
            # the launcher's own progress lines unless --verbosity asks for more.
            logging.set_verbosity(logging.WARNING)
        if len(argv) > 1:
            print(f"error: unexpected positional arguments {argv[1:]}; all options are --flags.",
                  file=sys.stderr)
            sys.exit(2)
        try:
            return main(argv)
        except (UserError, FileExistsError, FileNotFoundError) as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(1)
        except KeyboardInterrupt:
            print("interrupted; outputs written so far are complete, the rest was not written.",
                  file=sys.stderr)
            sys.exit(130)

    return wrapped


def run(main: Callable[[list[str]], object]) -> None:
    """`absl.app.run(main)` with clean user-error handling."""
    app.run(_wrap(main))
