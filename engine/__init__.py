"""noodle2's engine: everything but the console.  docs/architecture.md maps its packages."""
from pathlib import Path

# themes/ and sample_studies/ sit beside engine/ and console/, in a checkout and in the wheel alike
DATA = Path(__file__).resolve().parent.parent
