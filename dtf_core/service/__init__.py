"""`dtf-core serve` and its clients: the /v1 HTTP API, the run manager, process wiring, the API
client, `dtf-core submit`, suite bundles, and the limits and retention of uploads."""
