"""The operator's web console: the fleet on a map, alerts as they happen, each device's
history, the landmarks' health and a result-token inspector, over a verifier's store.

Served by ``geoattest console`` (Starlette on uvicorn, loopback by default). It needs
nothing from the Internet: maps are SVG drawn by the server from the Natural Earth
borders the verifier judges by, and the only script is ``data/console.js``, a few lines
of plain JavaScript for the live updates (server-sent events).
"""
