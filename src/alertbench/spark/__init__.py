"""The broker's Spark cluster: the session, a standalone cluster here, and one deployed over SSH.

The twin of :mod:`alertbench.kafka` for the broker: :mod:`.session` builds
the SparkSession (local or on a master) with the connectors and settings the
broker needs; :mod:`.state` records a standalone cluster's daemons by PID;
:mod:`.standalone` runs one on this machine; :mod:`.hosts` and
:mod:`.deploy` check and start one on the inventory's hosts.
"""
