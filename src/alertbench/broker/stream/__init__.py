"""The broker's Spark Structured Streaming queries around the batch path.

Spark keeps the Kafka offsets, the checkpoints, the trigger and the
exactly-once commit (:mod:`.sink`); the tasks it schedules run
:mod:`alertbench.broker.batch`. :mod:`.offsets` plans micro-batches,
:mod:`.source` holds the Python data sources, and :mod:`.stream2raw`,
:mod:`.raw2science`, :mod:`.distribute` and :mod:`.fused` start the queries
that :mod:`.run` runs.
"""
