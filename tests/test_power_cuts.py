"""Power cuts while the entry log is written: a writer process appends entries and says
which were acknowledged; it is killed with SIGKILL at random moments, a hundred times.
After each restart every acknowledged entry is there, none twice, and the log opens."""
from __future__ import annotations

import random
import signal
import subprocess
import sys
import time

import pytest

from kiosk.store import read_entries

WRITER = r"""
import sys, time
from kiosk.model import Entry, new_id
from kiosk.store import EntryLog
log = EntryLog(sys.argv[1], compact_every=40)     # compaction often, so kills land in it too
log.start()
n = int(sys.argv[2])
while True:
    t = time.time()
    e = Entry(id=new_id(t), site="s", kiosk="k", t=t, direction="in",
              declaration={"format": "sitepass", "status": "valid", "holder": f"V{n}"}, fingerprint=str(n),
              ble={"outcome": "confirmed"}, decision="allow", reasons=())
    if log.append(e):
        print(e.id, flush=True)        # acknowledged: the entry is on disk
    n += 1
"""


@pytest.mark.slow
def test_a_hundred_power_cuts_lose_no_acknowledged_entry(tmp_path):
    folder = tmp_path / "log"
    rng = random.Random(42)
    acknowledged: list[str] = []
    for cut in range(100):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(folder), str(cut * 10_000)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = proc.stdout.readline()                   # it is up and appending
        time.sleep(rng.uniform(0.0, 0.15))
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
        acknowledged += [line for line in (first + out).splitlines() if line.strip()]
        assert "Traceback" not in err, err
        ids = [d["id"] for d in read_entries(folder)]
        assert len(ids) == len(set(ids)), f"after cut {cut}: an entry is there twice"
        missing = set(acknowledged) - set(ids)
        assert not missing, f"after cut {cut}: {len(missing)} acknowledged entries lost"
    assert len(acknowledged) > 300
