"""Redis as tokenboard's read model: key names, the client factory, and the queries that the
HTTP API, the CLI and the leader read it with. No process of its own."""
