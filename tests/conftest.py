import os
import sys

# tests/support is importable as `support`
sys.path.insert(0, os.path.dirname(__file__))
