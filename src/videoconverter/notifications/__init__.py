"""Job notifications: every job state change becomes a versioned event, published to the broker's
notifications topic and delivered to HTTP webhooks (signed, retried, never blocking a transcode)."""
