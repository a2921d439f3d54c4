"""EventBridge: rule targets delivered as AWS delivers them."""
