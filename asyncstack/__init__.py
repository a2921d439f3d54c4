"""asyncstack: reliable async patterns on AWS, in Python.

``asyncstack.runtime`` runs in Lambda (consumers, publishers, delayed jobs, request-reply, webhooks,
long-running jobs, workflow helpers); ``asyncstack.cdk`` defines the infrastructure with safe
defaults (work queues, fan-out topics, delayed jobs, workflows, the job API); ``asyncstack.contract``
holds the names both sides share.
"""

__version__ = "0.1.0"
