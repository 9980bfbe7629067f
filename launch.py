"""Start the workbench: ``python launch.py [--host 127.0.0.1] [--port 7860]``."""

from app.main import main

if __name__ == "__main__":
    main()
