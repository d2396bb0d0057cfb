"""Request ids, JSON logs and the metrics registry: what every process reports about itself."""
