"""One module a command (group): each builds its argparse subparser in `register` and sets `run`.

Command modules parse flags and print; the work lives in the modules they call.
"""
