import sys

from hashlearn.cli.main import main

sys.exit(main())
