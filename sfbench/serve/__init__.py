"""Policy serving over openpi's websocket protocol: ``sfbench serve`` and the batching behind it."""
