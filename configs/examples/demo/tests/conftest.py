"""Make ``import demo`` work whatever the current directory is."""

import os
import sys

_EXAMPLES = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if _EXAMPLES not in sys.path:
    sys.path.insert(0, _EXAMPLES)
