import logging

import pytest

from tvm_patches.host_target import host_target as _host_target
from tvm_patches.quiet_logging import quiet_metaschedule_logging
from tvm_patches.tensor_intrin import register_tensor_intrinsics


@pytest.fixture(scope="session")
def host_target():
    quiet_metaschedule_logging()
    logging.getLogger("cdmpp_tvm").setLevel(logging.INFO)
    target = _host_target()
    register_tensor_intrinsics(target)
    return target
