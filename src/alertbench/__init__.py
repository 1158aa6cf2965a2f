"""alertbench: a real alert system and alert broker, measured at survey scale."""

__version__ = "0.1.0"
