"""``python -m erchub.services``: run the `erc` hub service."""

from erchub.services.app import main

main()
