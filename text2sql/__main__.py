import sys

from text2sql.cli import main

sys.exit(main())
