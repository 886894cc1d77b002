"""The stream worker: stage 1 (pre-aggregator), stage 2 (the Faust fold into changelog-backed
tables) and the Redis snapshot writer. Runs in every ``tokenboard worker`` process."""
