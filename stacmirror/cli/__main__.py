"""``python -m stacmirror.cli``: the same as the ``stacmirror`` command."""

from . import main

main()
