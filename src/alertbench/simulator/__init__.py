"""The alert stream simulator: schedules and producers that stream alerts into Kafka."""
