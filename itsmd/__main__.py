"""`python -m itsmd` runs the command-line interface."""

from itsmd.cli import main

raise SystemExit(main())
