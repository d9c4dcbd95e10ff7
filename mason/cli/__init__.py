"""The ``mason`` command line: click commands and terminal presentation; no build logic.
Only ``main`` catches exceptions, turning a MasonError into a message and exit code 1."""
