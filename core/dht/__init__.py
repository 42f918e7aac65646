"""Grove's DHT: Kademlia on `/grove/kad/1.0.0` with signed, short-lived village records.

Pure logic lives here (keyspace, routing table, lookups, records, the record store); the wire
protocol and the trio service live in `core.net.kad` and `core.dht.service`.
"""
