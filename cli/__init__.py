"""The ``worldfeed`` command line: the outermost layer, which assembles every other package."""
