"""``python -m emotion_training.temporal``: run the temporal pipeline's command line."""

import sys

from .cli import main

sys.exit(main())
