"""Command-line launchers: `python -m launchers.<name> --flags` (absl), thin wrappers over the library.

Importing this package turns TensorFlow's C++ start-up logging off before any launcher imports TensorFlow
(`tfstylegan.utils.cli.quiet_tensorflow`), unless the command line has `--verbosity` or the user set
`TF_CPP_MIN_LOG_LEVEL`.
"""

import sys

from tfstylegan.utils.cli import quiet_tensorflow, verbosity_requested

if not verbosity_requested(sys.argv):
    quiet_tensorflow()
