"""The live stream: server-sent events carrying the public view of what changed."""
