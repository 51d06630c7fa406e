"""MLflow tracking's names and times of a run, from its record (the real server and store, end to end:
tests/e2e/test_tracking_workflow.py)."""

import time

from lth.store import tracking


def test_run_names_and_times_come_from_the_record():
    record = {"seed": 2, "level": 7, "variant": "ticket", "target": "", "times": {"start": 1000.5, "end": 1100.25}}
    assert tracking.run_name(record) == "level07-ticket"
    assert tracking.run_name({**record, "level": 0, "variant": "dense"}) == "dense"
    assert tracking.run_name({**record, "level": 4, "variant": "ticket_transfer", "target": "cifar10"}) \
        == "level04-ticket_transfer-on-cifar10"
    assert tracking.run_name({**record, "level": 0, "variant": "dense", "target": "cifar10"}) == "dense-on-cifar10"
    assert tracking.run_times(record) == (1_000_500, 1_100_250)
    before = time.time() * 1000
    start, end = tracking.run_times({k: v for k, v in record.items() if k != "times"})  # an older record
    assert before - 1 <= start <= end <= time.time() * 1000 + 1
