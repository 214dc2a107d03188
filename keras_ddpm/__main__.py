"""`python -m keras_ddpm`: the `keras-ddpm` command."""

import sys

from keras_ddpm.cli import main

if __name__ == "__main__":
    sys.exit(main())
