"""One module per ``ci-tools`` command: argument parsing and output, logic elsewhere."""
