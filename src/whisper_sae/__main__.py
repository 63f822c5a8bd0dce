import sys

from whisper_sae.cli import main

sys.exit(main())
