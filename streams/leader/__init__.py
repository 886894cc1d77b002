"""The leader's job: ranks, week closing, ranking changes, alerts and retention. Runs in the
one ``tokenboard worker`` process that leads the Faust consumer group."""
