"""``python -m asyncstack.runtime.webhooks rotate ...``: the operator's rotation command."""

import sys

from asyncstack.runtime.webhooks.secret import main

sys.exit(main())
