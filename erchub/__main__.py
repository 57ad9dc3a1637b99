"""``erchub`` and ``python -m erchub``: the command line (see erchub.cli)."""

import sys

from erchub.execute import skip_unused_iri_grammar


def main() -> int:
    skip_unused_iri_grammar()
    from erchub.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
