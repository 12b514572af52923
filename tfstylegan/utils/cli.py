"""Launcher plumbing: absl `app.run` with user errors shown as one clean message.

Launchers are thin: flags -> config -> one library call. `run(main)` turns a
`UserError` (or a `FileExistsError`/`FileNotFoundError` about user paths) into
`error: <message>` on stderr and exit status 1, never a deep traceback.

The console shows the launcher's own lines: unless `--verbosity` is given or the user set
`TF_CPP_MIN_LOG_LEVEL`, TensorFlow's C++ logging is turned off before TensorFlow is imported
(`TF_CPP_MIN_LOG_LEVEL=3`; errors still surface as Python exceptions). TF 2.21 prints a few start-up
lines (oneDNN, CUDA stubs, cuInit) before it reads that variable, so the import and the device
discovery run with file descriptor 2 sent to a temporary file, which is shown if the import fails.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable

from absl import app, flags, logging

from tfstylegan.utils.errors import UserError

_OURS = "TFSTYLEGAN_QUIET_TF"


def verbosity_requested(argv: list[str]) -> bool:
    """True if the command line asks for absl/TensorFlow logging (`--verbosity`, `-v`)."""
    return any(a == "-v" or a.startswith(("--verbosity", "-v=")) for a in argv[1:])


@contextlib.contextmanager
def _stderr_to_file():
    """Sends file descriptor 2 (C++ and Python) to a temporary file; replays it if the block raises."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            capture.seek(0)
            sys.stderr.write(capture.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def quiet_tensorflow() -> None:
    """Imports TensorFlow with its C++ start-up logging off (unless the user set TF_CPP_MIN_LOG_LEVEL).

    Call before anything imports TensorFlow; later calls are no-ops.
    """
    if "tensorflow" in sys.modules:
        return
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ and _OURS not in os.environ:
        return  # the user chose; respect it
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.environ[_OURS] = "1"  # launchers started by this one (the demo's stages) quieten TensorFlow too
    with _stderr_to_file():
        # here: launchers quiet TensorFlow's logging before importing it (its start-up lines go to the capture)
        import tensorflow as tf

        tf.config.list_physical_devices()  # device discovery logs (cuInit) too


def _wrap(main: Callable[[list[str]], object]) -> Callable[[list[str]], object]:
    def wrapped(argv):
        if not flags.FLAGS["verbosity"].present:
            # TensorFlow logs SavedModel/checkpoint internals at INFO through absl; keep the console to
            # the launcher's own progress lines unless --verbosity asks for more.
            logging.set_verbosity(logging.WARNING)
            quiet_tensorflow()
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
