import sys

from setae.cli import main

sys.exit(main())
