"""DynamoDB: the patch that keeps transactions cheap on big tables."""
