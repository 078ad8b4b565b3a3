"""The ``mosaic`` command line: run the system embedded, submit and watch tasks."""
