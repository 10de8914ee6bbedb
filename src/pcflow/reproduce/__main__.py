"""`python -m pcflow.reproduce`: the same as `pcflow reproduce` (a package runs its __main__)."""

import sys

from pcflow.reproduce import main

sys.exit(main())
