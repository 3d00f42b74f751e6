"""``python -m cdc_platform.cli``: the same as the ``cdc-platform`` script."""

from cdc_platform.cli import main

main()
