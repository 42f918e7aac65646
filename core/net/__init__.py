"""The only package that imports py-libp2p (0.8.1, pinned).

Everything above sees `GroveHost` (peer ids and multiaddrs as plain strings) and the framing
helpers. What py-libp2p 0.8.1 does that we design around:
- it is trio-only; the node runs it in one thread (core.node);
- a stream whose reader pauses ~5 s is reset: handlers read promptly, every await has a timeout;
- ~32 KiB writes are far faster than large ones: `framing.write_frame` chunks;
- end-of-stream is unreliable over relays: messages are length-prefixed frames;
- importing it sets its logger to WARNING without propagation: `logs.route_libp2p_logs`.
"""

from core.net.logs import route_libp2p_logs

route_libp2p_logs()
