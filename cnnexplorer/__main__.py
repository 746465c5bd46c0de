"""Allow ``python -m cnnexplorer``."""

from cnnexplorer.cli import main

raise SystemExit(main())
