"""``python -m streamdehaze.train ARGS`` = ``streamdehaze train ARGS`` (the entry for torchrun's ``-m``)."""

import sys

from ..cli import main

if __name__ == "__main__":
    main(["train", *sys.argv[1:]], prog_name="streamdehaze")
