"""``python -m hypo COMMAND``: the same as the ``hypo`` console script."""

from hypo.cli.main import main

if __name__ == "__main__":
    main()
