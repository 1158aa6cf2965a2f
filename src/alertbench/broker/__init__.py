"""The alert broker: Fink's three stages (stream2raw, raw2science, distribute) or fused.

``batch/`` is what one Spark task does to one batch of alerts (decode, raw,
cuts and science, routing, sending), over Arrow and with no Spark import;
``stream/`` holds the Spark Structured Streaming queries around it (sources,
the exactly-once sink, the stages and their run).
"""
