import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see launch.py

from engine.cli import main  # noqa: E402

raise SystemExit(main())
