"""OpenTelemetry (OTLP) traces and logs → inference and feedback records.

``decode`` turns request bodies into the official ``opentelemetry-proto`` messages; ``mapping`` (spans)
and ``logs`` (log records) turn those messages into ``schemas.records`` structs the usual ingest path
publishes. Pure functions: no
I/O, no settings, so the HTTP route and the benchmark share them.
"""
