"""A command stops cleanly on systemd's SIGTERM and on Ctrl-C (SIGINT), in a real process."""
import signal
import subprocess
import sys

import pytest

COMMAND = """
from kiosk.shutdown import stop_on_signals
stop = stop_on_signals()
print("waiting", flush=True)
print("stopped" if stop.wait(30) else "timed out", flush=True)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_sets_the_stop_event_and_the_command_ends_normally(sig):
    process = subprocess.Popen([sys.executable, "-c", COMMAND], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "waiting"
        process.send_signal(sig)
        assert process.stdout.readline().strip() == "stopped"
        assert process.wait(30) == 0          # no KeyboardInterrupt, no death by the signal
    finally:
        process.kill()
        process.wait()
