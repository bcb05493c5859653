"""``python -m stacmirror``: the same as the ``stacmirror`` command."""

from .cli import main

main()
