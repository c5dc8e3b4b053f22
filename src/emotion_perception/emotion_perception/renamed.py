"""The dashed executable names of 0.1.0 (``emotion-eval-bag``, ``emotion-train``, ...).

Both packages' setup.py install each old name as a console script pointing here. It prints
one deprecation line to stderr and runs the underscore command of the same name with the
same arguments. The command is found by its console-script entry point, so this module
keeps no list of its own. The old names go in :data:`REMOVED_IN`.
"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

REMOVED_IN = "0.3.0"


def main() -> int:
    """Warn, then run the underscore command that the invoked dashed name stands for."""
    invoked = Path(sys.argv[0]).name
    new = invoked.replace("-", "_")
    found = list(metadata.entry_points(group="console_scripts", name=new)) \
        if "-" in invoked else []
    if not found:
        print(f"{invoked}: not one of the renamed executables of 0.1.0 (no console script "
              f"{new!r} is installed)", file=sys.stderr)
        return 2
    print(f"{invoked} is deprecated and is removed in {REMOVED_IN}: use {new} (same "
          "arguments)", file=sys.stderr)
    sys.argv[0] = str(Path(sys.argv[0]).with_name(new))  # usage lines name the new command
    return found[0].load()()
