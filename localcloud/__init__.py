"""The local cloud: run asyncstack's functions against moto, with Lambda's semantics, without Docker."""
