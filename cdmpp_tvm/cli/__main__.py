"""``python -m cdmpp_tvm.cli ...`` (what torchrun runs: ``torchrun --nproc_per_node N -m cdmpp_tvm.cli train ...``)."""
import sys

from . import main

sys.exit(main())
