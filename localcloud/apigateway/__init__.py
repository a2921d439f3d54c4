"""API Gateway: the local API that serves deployed REST APIs over HTTP."""
