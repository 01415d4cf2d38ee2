"""``python -m appmaster``: the AppMaster (Skein's master script)."""

import sys

from appmaster.master import main

sys.exit(main())
