"""What the Python client drivers share: their command line, output and time limit.

    python CLIENT_client.py produce CONFIG.json TOPIC DIR
    python CLIENT_client.py consume CONFIG.json TOPIC GROUP COUNT TIMEOUT_S

CONFIG.json is the keyword arguments ``kafka user add --format kafka-python``
writes. Each file of DIR is one record, keyed by its name's stem. A consumed
record is printed as a JSON line (key, sha256 and size of its value); an error
as a last line ``{"error": ...}``, with exit code 1. The matrix test reads both.
"""

from __future__ import annotations

import hashlib
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path


def record(key: bytes, value: bytes | None) -> None:
    """Print one consumed record."""
    value = value or b""
    digest = hashlib.sha256(value).hexdigest()
    print(json.dumps({"key": key.decode(), "sha256": digest, "size": len(value)}), flush=True)


def _give_up(_signum, _frame) -> None:
    raise TimeoutError("no answer in time (the client kept retrying)")


def main(
    load: Callable[[str], dict],
    produce: Callable[[dict, str, Path], int],
    consume: Callable[[dict, str, str, int, float], None],
) -> int:
    """Run the verb of the command line with a client's ``produce`` or ``consume``."""
    verb, config, topic, *rest = sys.argv[1:]
    kwargs = load(config)
    # A client's constructor may block while it retries a bootstrap it cannot reach.
    signal.signal(signal.SIGALRM, _give_up)
    signal.alarm(int(float(rest[2])) + 5 if verb == "consume" else 90)
    try:
        if verb == "produce":
            print(json.dumps({"sent": produce(kwargs, topic, Path(rest[0]))}))
        else:
            consume(kwargs, topic, rest[0], int(rest[1]), float(rest[2]))
    except Exception as exc:  # the matrix records what failed, in the client's words
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        return 1
    return 0
