"""aiokafka as its users run it: produce files, or consume records, with a client JSON.

Arguments and output as ``kafka_python_client.py``'s. aiokafka takes
kafka-python's keyword arguments, except that TLS trust is an ``ssl_context``
made from the file's ``ssl_cafile``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.helpers import create_ssl_context


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


async def produce(kwargs: dict, topic: str, folder: Path) -> None:
    producer = AIOKafkaProducer(acks="all", max_request_size=4_000_000, **kwargs)
    await producer.start()
    try:
        files = sorted(folder.iterdir())
        for f in files:
            await producer.send_and_wait(topic, key=f.stem.encode(), value=f.read_bytes())
    finally:
        await producer.stop()
    print(json.dumps({"sent": len(files)}))


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
                    value = r.value or b""
                    digest = hashlib.sha256(value).hexdigest()
                    print(json.dumps({"key": r.key.decode(), "sha256": digest, "size": len(value)}))
                    seen += 1
    finally:
        await consumer.stop()


def main() -> int:
    verb, config, topic, *rest = sys.argv[1:]
    kwargs = _kwargs(config)
    try:
        if verb == "produce":
            asyncio.run(produce(kwargs, topic, Path(rest[0])))
        else:
            asyncio.run(consume(kwargs, topic, rest[0], int(rest[1]), float(rest[2])))
    except Exception as exc:  # the matrix records what failed, in the client's words
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
