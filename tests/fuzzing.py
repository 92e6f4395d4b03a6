"""The Hypothesis budget shared by the fuzz tests (readers, configs).

``SEQREC_FUZZ_EXAMPLES`` raises the number of examples for a longer local run; under CI
(``CI`` set) the examples are derandomized, so a run is reproducible.
"""

import datetime as dt
import os

from hypothesis import HealthCheck, settings

FUZZ = settings(
    max_examples=int(os.environ.get("SEQREC_FUZZ_EXAMPLES", "60")),
    deadline=dt.timedelta(seconds=10),
    derandomize=bool(os.environ.get("CI")),
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
