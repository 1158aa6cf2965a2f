"""What an alert is: schemas, wire formats, readers and synthesis.

This package imports nothing else of alertbench, so any part may use it.
"""
