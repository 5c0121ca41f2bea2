"""`python -m lrdoctor` is the `lrdoctor` command."""

import sys

from lrdoctor.cli import main

sys.exit(main())
