"""HTTP servers: the ingest gateway (``tokenboard ingest``), the read API and dashboard
(``tokenboard api``), and the web plumbing they and the worker's health port share."""
