"""``python -m geoattest`` runs the command line (the demo starts its processes this way)."""

from geoattest.cli import main

main()
