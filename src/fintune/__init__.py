"""fintune: fine-tune and evaluate language models on financial text from one YAML file."""

import logging

__version__ = "0.1.0"

# bitsandbytes logs a warning on import when an optional hub-fetched CPU kernel is absent;
# its portable kernels work, so keep the message out of every command's output.
logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
