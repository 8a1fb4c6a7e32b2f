"""raylite's console scripts.

``raylite`` (``raylite.cli._raylite:main``) is the cluster and runtime tool: ``raylite --version``,
``raylite microbenchmark``. Each script lives in its own private module and imports what a
subcommand needs inside that subcommand, so starting a script stays cheap.
"""

__all__: list[str] = []
