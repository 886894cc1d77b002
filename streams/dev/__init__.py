"""Tools for a laptop and for tests, never run in production: the local Kafka and Redis
stack, worker child processes, the traffic simulator and the scenario replay."""
