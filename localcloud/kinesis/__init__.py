"""Kinesis Data Streams: its side of the local cloud's stream event source mappings."""
