"""``python -m pyromim``: the same as the ``pyromim`` command."""

from pyromim.cli import console_main

if __name__ == "__main__":
    console_main()
