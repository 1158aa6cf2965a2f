"""Faults injected into a running benchmark, and what they cost.

:mod:`.spec` says what a scenario may ask (``[[faults]]``, ``--fault``) and
refuses what cannot run; :mod:`.kinds` acts on the processes the bench
started, by PID; :mod:`.injector` times them against the load; :mod:`.measure`
turns a run's records into results.json's ``faults``.
"""
