"""CLI layer: every command-line front (argparse, one-line errors, progress output).

:mod:`hypo.cli.main` is the ``hypo`` command; each verb is a module here with ``main(argv, prog)``, a thin
front over a package function that is also the Python API. May import every layer.
"""
