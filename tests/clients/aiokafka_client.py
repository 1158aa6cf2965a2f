"""aiokafka as its users run it: produce files, or consume records (see driver.py).

aiokafka takes kafka-python's keyword arguments, except that TLS trust is an
``ssl_context`` made from the file's ``ssl_cafile``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.helpers import create_ssl_context
from driver import main, record


def _kwargs(path: str) -> dict:
    kwargs = json.loads(Path(path).read_text())
    cafile = kwargs.pop("ssl_cafile", None)
    check = kwargs.pop("ssl_check_hostname", True)
    certfile, keyfile = kwargs.pop("ssl_certfile", None), kwargs.pop("ssl_keyfile", None)
    if "SSL" in kwargs.get("security_protocol", ""):
        context = create_ssl_context(cafile=cafile, certfile=certfile, keyfile=keyfile)
        context.check_hostname = check
        kwargs["ssl_context"] = context
    return kwargs


async def produce(kwargs: dict, topic: str, folder: Path) -> int:
    producer = AIOKafkaProducer(acks="all", max_request_size=4_000_000, **kwargs)
    await producer.start()
    try:
        files = sorted(folder.iterdir())
        for f in files:
            await producer.send_and_wait(topic, key=f.stem.encode(), value=f.read_bytes())
    finally:
        await producer.stop()
    return len(files)


async def consume(kwargs: dict, topic: str, group: str, count: int, timeout: float) -> None:
    consumer = AIOKafkaConsumer(
        topic, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False, **kwargs
    )
    await consumer.start()
    seen = 0
    deadline = time.monotonic() + timeout
    try:
        while seen < count and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    record(r.key, r.value)
                    seen += 1
    finally:
        await consumer.stop()


if __name__ == "__main__":
    sys.exit(
        main(
            _kwargs,
            lambda *args: asyncio.run(produce(*args)),
            lambda *args: asyncio.run(consume(*args)),
        )
    )
