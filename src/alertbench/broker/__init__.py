"""The alert broker on Spark: stream2raw, raw2science, distribute."""
