"""Faults injected into a running benchmark, and what they cost.

:mod:`.spec` says what a scenario may ask (``[[faults]]``, ``--fault``) and
refuses what cannot run; :mod:`.kinds` maps each kind to its act, one small
class with ``inject`` and ``heal`` (:mod:`.target`): on the Kafka the bench
started (:mod:`.kafka_acts`; its network, :mod:`.network` through
:mod:`.tc`), on alertbench's broker (:mod:`.broker_acts`,
whose disk :mod:`.disk` mounts and fills) and in its input
(:mod:`.input_acts`), each on processes the bench started, by PID;
:mod:`.injector` times them against the load; :mod:`.measure` turns a run's
records into results.json's ``faults``.
"""
