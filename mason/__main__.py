import sys

from mason.cli.main import main

sys.exit(main())
