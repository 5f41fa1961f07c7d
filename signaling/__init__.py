"""The aiohttp signaling server: HTTP API, pages, auth, tokens, rooms and the WebSocket."""
