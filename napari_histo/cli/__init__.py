"""The ``histo`` command line (sub-commands are imported only when used)."""
