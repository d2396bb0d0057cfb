"""Server-Sent Event streams: wake-up hints between processes, and the response that serves a stream."""
