"""Stream processing: bus, processors, ClickHouse sink, windows, alert delivery and the runners (embedded, faust)."""
