"""What one task does to one batch of alerts, over Arrow, with no Spark import.

Decode the survey's Avro (:mod:`.decode`, :mod:`.avro`, :mod:`.raw`), flatten
it (:mod:`.flatten`), cut and enrich it (:mod:`.route`, :mod:`.science`),
choose its topics (:mod:`.filters`, :mod:`.sql`) and send it (:mod:`.send`);
:mod:`.tasks` puts these together into each stage's task. Everything here is
importable and testable without pyspark.
"""
