"""The webhook server: aiohttp over TLS around the admission core."""
