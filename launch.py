"""Start the workbench: ``python launch.py [--host 127.0.0.1] [--port 7860]``."""

import os

# Before any OpenMP runtime loads: idle llama.cpp/torch threads sleep instead of spinning,
# which on a 2-core machine otherwise starves the UI and the other threads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from app.main import main  # noqa: E402

if __name__ == "__main__":
    main()
